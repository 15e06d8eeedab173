import { randomBytes } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { http } from 'msw';
import { describe, expect, it } from 'vitest';
import { FAILED_RETRY_BASE_MS } from '../../src/agent/deploy/failure.js';
import { buildBundleSync } from '../control-plane/bundles.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { tgz } from '../archive/hostile-tar.js';
import { VirtualClock } from '../support/virtual-clock.js';
import { cacheContents, deployAgent, listTree, readThroughCurrent, reportsFor } from './fixture.js';

const clock = new VirtualClock();
const { cp, baseUrl, server } = setupControlPlane({ now: () => clock.now() });

const bundleA = buildBundleSync({ 'spec.kv': 'version=a\n', 'conf/app.conf': 'a\n' });
const bundleB = buildBundleSync({ 'spec.kv': 'version=b\n', 'conf/app.conf': 'b\n' });
const bundleC = buildBundleSync({ 'spec.kv': 'version=c\n', 'conf/app.conf': 'c\n' });

describe('a deployment goes active', () => {
  it('downloads, verifies, extracts and points current at it, reporting downloading → verifying → active', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();

    const sha = deployment.bundle.sha256;
    expect(await agent.current()).toBe(sha);
    expect(await readThroughCurrent(agent.layout, 'conf/app.conf')).toBe('a\n');
    expect(agent.state().deployment.current).toMatchObject({ deployment_id: deployment.deployment_id, bundle_sha256: sha, state: 'active' });
    expect(agent.state().deployment.work).toBeNull();
    expect(await cacheContents(agent.layout)).toEqual({ bundles: [sha], downloads: [], stray: [] });

    expect(agent.state().pending_reports.map((p) => p.report.state)).toEqual(['downloading', 'verifying', 'active']);
    await agent.flush();
    expect(reportsFor(cp, deployment)).toEqual([
      ['downloading', null],
      ['verifying', null],
      ['active', null],
    ]);
    expect(cp.statusReports.every((r) => r.body.bundle_sha256 === sha)).toBe(true);
    expect(agent.state().pending_reports).toEqual([]);
    expect(await agent.flush()).toBe('idle');

    // The bundle came from the API with the agent's key; a second fetch is a 304 and does nothing.
    expect(cp.requestsTo('bundle').map((r) => r.headers.authorization)).toEqual([`Bearer ${agent.apiKey}`]);
    await agent.fetch();
    expect(cp.requestsTo('deployment').at(-1)?.status).toBe(304);
    expect(cp.requestsTo('bundle')).toHaveLength(1);
  });

  it('keeps the previous bundle, deletes older ones', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const a = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    const b = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleB });
    await agent.fetch();
    expect(await cacheContents(agent.layout)).toMatchObject({ bundles: [a.bundle.sha256, b.bundle.sha256].sort() });
    const c = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleC });
    await agent.fetch();

    expect(await agent.current()).toBe(c.bundle.sha256);
    expect(agent.state().deployment.previous).toMatchObject({ deployment_id: b.deployment_id, bundle_sha256: b.bundle.sha256 });
    expect(await cacheContents(agent.layout)).toEqual({ bundles: [b.bundle.sha256, c.bundle.sha256].sort(), downloads: [], stray: [] });
  });

  it('rolls back to a cached bundle without downloading and reports rolled_back', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const a = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    cp.publishDeployment({ agentId: agent.agentId, bundle: bundleB });
    await agent.fetch();
    const downloads = cp.requestsTo('bundle').length;

    const rollback = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    await agent.flush();

    expect(cp.requestsTo('bundle')).toHaveLength(downloads);
    expect(await agent.current()).toBe(a.bundle.sha256);
    expect(await readThroughCurrent(agent.layout, 'conf/app.conf')).toBe('a\n');
    expect(reportsFor(cp, rollback)).toEqual([['rolled_back', null]]);
    expect(agent.state().deployment.current).toMatchObject({ deployment_id: rollback.deployment_id, state: 'rolled_back' });
    expect(agent.state().deployment.previous?.bundle_sha256).toBe(bundleShaOf(bundleB));
  });

  it('re-deploying the current bundle under a new deployment is simply active', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    const again = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    await agent.flush();
    expect(reportsFor(cp, again)).toEqual([['active', null]]);
    expect(cp.requestsTo('bundle')).toHaveLength(1);
    expect(agent.state().deployment.previous).toBeNull();
  });

  it('fetches a cross-origin bundle URL without the Authorization header', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, bundleUrl: 'cross-origin' });
    expect(deployment.bundle.url.startsWith('https://storage.byteor.test/')).toBe(true);
    await agent.fetch();

    const [download] = cp.requestsTo('bundle');
    expect(download?.url.startsWith('https://storage.byteor.test/')).toBe(true);
    expect(download?.headers.authorization).toBeUndefined();
    expect(download?.status).toBe(200);
    expect(await agent.current()).toBe(deployment.bundle.sha256);
    // The API requests around it still carry the key.
    expect(cp.requestsTo('deployment')[0]?.headers.authorization).toBe(`Bearer ${agent.apiKey}`);
  });
});

describe('what the bundle server sends is not trusted', () => {
  it('stops reading as soon as a response runs past size_bytes (no Content-Length to go by)', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    let sent = 0;
    // An endless body without Content-Length: the agent must not fill the disk with it.
    server.use(
      http.get(`${baseUrl}${deployment.bundle.url}`, () => {
        const chunk = new Uint8Array(64 * 1024);
        return new Response(
          new ReadableStream<Uint8Array>({
            pull(controller) {
              sent += chunk.length;
              if (sent > 64 * 1024 * 1024) controller.close();
              else controller.enqueue(chunk);
            },
          }),
          { status: 200, headers: { 'content-type': 'application/gzip' } },
        );
      }),
    );
    await agent.fetch();
    expect(agent.state().deployment.failed).toMatchObject({ reason: 'size_mismatch', message: expect.stringContaining('more than') });
    expect(sent).toBeLessThan(1024 * 1024);
    expect(await cacheContents(agent.layout)).toEqual({ bundles: [], downloads: [], stray: [] });
  });

  it('a refusal by the storage behind a pre-signed URL is transient, not a missing scope', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, bundleUrl: 'cross-origin' });
    cp.fault('bundle', { status: 403, body: '<Error><Code>AccessDenied</Code></Error>' });
    const err: unknown = await agent.fetch().catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'TransientError', retryable: true, status: 403 });
    await agent.fetch();
    expect(await agent.current()).toBe(deployment.bundle.sha256);
  });
});

function bundleShaOf(bundle: Buffer): string {
  return cp.publishDeployment({ bundle, agentId: cp.createAgent().agentId }).bundle.sha256;
}

describe('downloads resume', () => {
  const big = buildBundleSync({ 'spec.kv': 'v=1\n', 'blob.bin': randomBytes(400_000) });

  it('resumes with Range after the connection drops mid-body', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: big });
    cp.fault('bundle', { truncateAfterBytes: 150_000 });

    await expect(agent.fetch()).rejects.toMatchObject({ retryable: true });
    expect(await agent.current()).toBeUndefined();
    const partial = join(agent.layout.downloadsDir, `${deployment.bundle.sha256}.tar.gz.part`);
    expect((await stat(partial)).size).toBe(150_000);
    // The ETag was not advanced: the next run fetches the deployment again and resumes.
    expect(agent.state().etags.deployment).toBeNull();

    await agent.fetch();
    const downloads = cp.requestsTo('bundle');
    expect(downloads.map((r) => [r.headers.range, r.status])).toEqual([
      [undefined, 200],
      ['bytes=150000-', 206],
    ]);
    expect(await agent.current()).toBe(deployment.bundle.sha256);
    await agent.flush();
    expect(reportsFor(cp, deployment)).toEqual([
      ['downloading', null],
      ['verifying', null],
      ['active', null],
    ]);
  });

  it('starts over when the server answers 200 to the range, or 416', async () => {
    for (const fault of [{ ignoreRange: true as const }, { status: 416 }]) {
      cp.reset();
      const agent = await deployAgent({ cp, baseUrl, clock });
      const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: big });
      cp.fault('bundle', { truncateAfterBytes: 100_000 });
      await expect(agent.fetch()).rejects.toMatchObject({ retryable: true });
      cp.fault('bundle', fault);
      await agent.fetch();
      expect(await agent.current()).toBe(deployment.bundle.sha256);
      expect(cp.requestsTo('bundle').slice(1).map((r) => r.headers.range ?? null)).toEqual(fault.status === 416 ? ['bytes=100000-', null] : ['bytes=100000-']);
    }
  });

  it('stops on shutdown and keeps the partial file for later', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: big });
    const controller = new AbortController();
    controller.abort();
    await expect(agent.fetch(controller.signal)).rejects.toMatchObject({ name: 'AbortedError' });
    expect(await agent.current()).toBeUndefined();
    await agent.fetch();
    expect(await agent.current()).toBe(deployment.bundle.sha256);
  });
});

describe('a deployment that fails a check is never activated', () => {
  async function failing(publish: (agentId: string) => ReturnType<typeof cp.publishDeployment>, reason: string, reports: string[]) {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const good = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    const bad = publish(agent.agentId);
    await agent.fetch();
    await agent.flush();
    expect(await agent.current()).toBe(good.bundle.sha256);
    expect(await readThroughCurrent(agent.layout, 'conf/app.conf')).toBe('a\n');
    expect(reportsFor(cp, bad)).toEqual(reports.map((state) => [state, state === 'failed' ? reason : null]));
    expect(agent.state().deployment.failed).toMatchObject({ deployment_id: bad.deployment_id, reason });
    expect(agent.state().deployment.current?.deployment_id).toBe(good.deployment_id);
    expect(await cacheContents(agent.layout)).toEqual({ bundles: [good.bundle.sha256], downloads: [], stray: [] });
    expect(agent.health.problems()).toEqual([expect.objectContaining({ code: 'deployment_failed', message: expect.stringContaining(reason) })]);
    return { agent, bad };
  }

  it('digest mismatch', async () => {
    await failing((agentId) => cp.publishDeployment({ agentId, bundle: bundleB, sha256Override: 'f'.repeat(64) }), 'digest_mismatch', ['downloading', 'failed']);
  });

  it('size mismatch, larger or smaller than served', async () => {
    await failing((agentId) => cp.publishDeployment({ agentId, bundle: bundleB, sizeOverride: bundleB.length - 1 }), 'size_mismatch', ['downloading', 'failed']);
    cp.reset();
    await failing((agentId) => cp.publishDeployment({ agentId, bundle: bundleB, sizeOverride: bundleB.length + 100 }), 'size_mismatch', ['downloading', 'failed']);
  });

  it('bad signature: nothing is downloaded', async () => {
    const before = cp.requestsTo('bundle').length;
    await failing((agentId) => cp.publishDeployment({ agentId, bundle: bundleB, afterSigning: (d) => (d.bundle.url = `${d.bundle.url}?evil=1`) }), 'signature_invalid', ['failed']);
    expect(cp.requestsTo('bundle')).toHaveLength(before + 1);
  });

  it('a hostile archive', async () => {
    const hostile = tgz([{ path: 'ok', data: 'x' }, { path: '../../escape', data: 'pwned' }]);
    const { agent } = await failing((agentId) => cp.publishDeployment({ agentId, bundle: hostile }), 'unsafe_archive', ['downloading', 'verifying', 'failed']);
    expect((await listTree(agent.stateDir)).filter((p) => p.includes('escape'))).toEqual([]);
  });

  it('an archive over the size cap', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock, options: { limits: { maxTotalBytes: 100 } } });
    const bad = cp.publishDeployment({ agentId: agent.agentId, bundle: buildBundleSync({ big: 'x'.repeat(1000) }) });
    await agent.fetch();
    await agent.flush();
    expect(reportsFor(cp, bad).at(-1)).toEqual(['failed', 'archive_too_large']);
    expect(await agent.current()).toBeUndefined();
  });

  it('disk full: not enough free space up front, nothing downloaded', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock, options: { freeBytes: async () => 2 * bundleB.length } });
    const bad = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleB });
    await agent.fetch();
    await agent.flush();
    expect(reportsFor(cp, bad)).toEqual([
      ['downloading', null],
      ['failed', 'disk_full'],
    ]);
    expect(cp.requestsTo('bundle')).toHaveLength(0);
    expect(cp.statusReports.at(-1)?.body.message).toMatch(/needs about \d+ free bytes/);
  });

  it('disk full: ENOSPC while writing removes the partial file', async () => {
    const big = buildBundleSync({ 'blob.bin': randomBytes(3_000_000) });
    const agent = await deployAgent({
      cp,
      baseUrl,
      clock,
      options: {
        // The real file, until the "disk" is full after the first megabyte.
        openWrite: async (path, flags) => {
          const handle = await open(path, flags);
          let written = 0;
          return {
            writev: async (chunks: Buffer[]) => {
              written += chunks.reduce((n, c) => n + c.length, 0);
              if (written > 1024 * 1024) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
              return handle.writev(chunks);
            },
            close: () => handle.close(),
          };
        },
      },
    });
    const bad = cp.publishDeployment({ agentId: agent.agentId, bundle: big });
    await agent.fetch();
    await agent.flush();
    expect(reportsFor(cp, bad).at(-1)).toEqual(['failed', 'disk_full']);
    expect(await cacheContents(agent.layout)).toEqual({ bundles: [], downloads: [], stray: [] });
    expect(agent.health.problems()[0]?.fix).toMatch(/free disk space/);
  });

  it('is not retried in a loop: only after a long backoff, or at once when the target changes', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const bad = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleB, sha256Override: 'e'.repeat(64) });
    await agent.fetch();
    for (let i = 0; i < 10; i += 1) {
      await clock.advance(60_000);
      await agent.fetch();
    }
    expect(cp.requestsTo('bundle')).toHaveLength(1);
    expect(agent.state().deployment.failed).toMatchObject({ attempts: 1 });

    await clock.advance(FAILED_RETRY_BASE_MS * 1.2);
    await agent.fetch();
    expect(cp.requestsTo('bundle')).toHaveLength(2);
    expect(agent.state().deployment.failed).toMatchObject({ deployment_id: bad.deployment_id, attempts: 2 });
    // The second failure waits twice as long.
    expect(agent.state().deployment.failed!.retry_after_ms - clock.now()).toBe(2 * FAILED_RETRY_BASE_MS);

    const fixed = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleB });
    await agent.fetch();
    expect(await agent.current()).toBe(fixed.bundle.sha256);
    expect(agent.state().deployment.failed).toBeNull();
    expect(agent.health.problems()).toEqual([]);
    await agent.flush();
    expect(reportsFor(cp, bad).map(([state]) => state)).toEqual(['downloading', 'failed', 'downloading', 'failed']);
  });

  it('a failure is forgotten when no deployment targets the agent any more', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    cp.publishDeployment({ agentId: agent.agentId, bundle: bundleB, sha256Override: 'e'.repeat(64) });
    await agent.fetch();
    expect(agent.health.problems()).toHaveLength(1);
    cp.clearDeployment({ agentId: agent.agentId });
    await agent.fetch();
    expect(agent.state().deployment).toMatchObject({ target: null, failed: null });
    expect(agent.health.problems()).toEqual([]);
  });
});

describe('signing keys', () => {
  it('refreshes the key set once for an unknown kid and proceeds when the rotation brought it', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    await agent.refreshKeys();
    // The hourly refresh was a while ago (an unknown kid refreshes at most once a minute).
    await clock.advance(5 * 60_000);
    const rotated = cp.addSigningKey({ kid: 'key-2027-01' });
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, kid: rotated });
    await agent.fetch();
    expect(cp.requestsTo('signing-keys')).toHaveLength(2);
    expect(await agent.current()).toBe(deployment.bundle.sha256);
  });

  it('fails unknown_key when the refresh does not bring it, and retries once a later refresh does', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, kid: 'key-not-yet-published' });
    await agent.fetch();
    expect(cp.requestsTo('signing-keys')).toHaveLength(1);
    expect(agent.state().deployment.failed).toMatchObject({ reason: 'unknown_key', kid: 'key-not-yet-published' });
    expect(cp.requestsTo('bundle')).toHaveLength(0);

    // Unchanged target, key still unknown: nothing happens (and no refresh storm).
    await clock.advance(60_000);
    await agent.fetch();
    expect(cp.requestsTo('signing-keys')).toHaveLength(1);

    // The rotation publishes the key; the hourly refresh picks it up; the next fetch retries.
    cp.addSigningKey({ kid: 'key-not-yet-published' });
    await agent.refreshKeys();
    await agent.fetch();
    expect(await agent.current()).toBe(deployment.bundle.sha256);
    await agent.flush();
    expect(reportsFor(cp, deployment).map(([s, r]) => `${s}${r === null ? '' : `:${r}`}`)).toEqual(['failed:unknown_key', 'downloading', 'verifying', 'active']);
  });

  it('trusts nothing once its key is removed from the set', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const oldKid = cp.currentKid();
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, kid: oldKid });
    cp.addSigningKey({ kid: 'key-new' });
    cp.removeSigningKey(oldKid);
    await agent.fetch();
    expect(agent.state().deployment.failed).toMatchObject({ deployment_id: deployment.deployment_id, reason: 'unknown_key' });
  });
});

describe('status reports', () => {
  it('are persisted until the control plane takes them, and keep their order through failures', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const a = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    const b = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleB });
    await agent.fetch();

    cp.fault('status', { status: 503, times: 2 });
    await expect(agent.flush()).rejects.toMatchObject({ retryable: true });
    await expect(agent.flush()).rejects.toMatchObject({ retryable: true });
    expect(cp.statusReports).toHaveLength(0);
    // Survives a restart: the queue is in state.json.
    const restarted = await deployAgent({ cp, baseUrl, clock, agent, stateDir: agent.stateDir });
    expect(restarted.state().pending_reports).toHaveLength(6);
    await restarted.flush();
    expect(cp.statusReports.map((r) => [r.deploymentId, r.body.state])).toEqual([
      [a.deployment_id, 'downloading'],
      [a.deployment_id, 'verifying'],
      [a.deployment_id, 'active'],
      [b.deployment_id, 'downloading'],
      [b.deployment_id, 'verifying'],
      [b.deployment_id, 'active'],
    ]);
    expect(restarted.state().pending_reports).toEqual([]);
  });

  it('drops a report the control plane refuses for good, and sends the rest', async () => {
    const agent = await deployAgent({ cp, baseUrl, clock });
    const a = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    cp.fault('status', { status: 400 });
    await agent.flush();
    expect(reportsFor(cp, a)).toEqual([
      ['verifying', null],
      ['active', null],
    ]);
    expect(agent.logs.records.some((r) => r.level === 'warn' && String(r.msg).includes('refused a downloading report'))).toBe(true);
  });
});
