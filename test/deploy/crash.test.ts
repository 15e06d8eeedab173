import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DeployStep } from '../../src/agent/deploy/index.js';
import { buildBundleSync } from '../control-plane/bundles.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { VirtualClock } from '../support/virtual-clock.js';
import { cacheContents, crashAt, deployAgent, readThroughCurrent, reportsFor, type DeployAgent } from './fixture.js';

const clock = new VirtualClock();
const { cp, baseUrl } = setupControlPlane({ now: () => clock.now() });

const bundleA = buildBundleSync({ 'spec.kv': 'version=a\n', 'conf/app.conf': 'a\n' });
const bundleB = buildBundleSync({ 'spec.kv': 'version=b\n', 'conf/app.conf': 'b\n' });

/** An agent with deployment A active, and deployment B published. */
async function aActiveBPublished() {
  const first = await deployAgent({ cp, baseUrl, clock });
  const a = cp.publishDeployment({ agentId: first.agentId, bundle: bundleA });
  await first.fetch();
  await first.flush();
  const b = cp.publishDeployment({ agentId: first.agentId, bundle: bundleB });
  return { first, a, b };
}

/** The same agent after a restart: everything reloaded from its state directory. */
function restart(agent: DeployAgent): Promise<DeployAgent> {
  return deployAgent({ cp, baseUrl, clock, agent: { agentId: agent.agentId, apiKey: agent.apiKey }, stateDir: agent.stateDir });
}

const STEPS: DeployStep[] = ['downloaded', 'bundle-committed', 'journal-written', 'link-created', 'link-swapped', 'state-committed', 'pruned'];

describe('a crash between any two steps of an activation', () => {
  it.each(STEPS)('at %s leaves a usable current, and the restart finishes the work exactly once', async (step) => {
    const { first, a, b } = await aActiveBPublished();
    const crash = crashAt(step);
    const dying = await deployAgent({ cp, baseUrl, clock, agent: first, stateDir: first.stateDir, options: { onStep: crash.onStep } });
    void dying.fetch();
    await crash.reached;

    // The "dead" process left current pointing at a complete bundle, old or new.
    const linked = await dying.current();
    expect([a.bundle.sha256, b.bundle.sha256]).toContain(linked);
    expect(await readThroughCurrent(first.layout, 'conf/app.conf')).toBe(linked === a.bundle.sha256 ? 'a\n' : 'b\n');

    const after = await restart(first);
    // Right after the restart, before any request, current is consistent with state.json.
    await after.fetch();
    await after.flush();

    expect(await after.current()).toBe(b.bundle.sha256);
    expect(await readThroughCurrent(after.layout, 'conf/app.conf')).toBe('b\n');
    expect(after.state().deployment).toMatchObject({
      current: { deployment_id: b.deployment_id, bundle_sha256: b.bundle.sha256, state: 'active' },
      previous: { deployment_id: a.deployment_id, bundle_sha256: a.bundle.sha256 },
      work: null,
      failed: null,
    });
    expect(await cacheContents(after.layout)).toEqual({ bundles: [a.bundle.sha256, b.bundle.sha256].sort(), downloads: [], stray: [] });
    expect(reportsFor(cp, b)).toEqual([
      ['downloading', null],
      ['verifying', null],
      ['active', null],
    ]);
    // Downloaded once: after the crash the complete download or the extracted bundle is reused.
    expect(cp.requestsTo('bundle').filter((r) => r.path.includes(b.deployment_id)).length).toBe(1);
  });

  it('a rollback interrupted after the swap is still reported as rolled_back', async () => {
    const { first, a, b } = await aActiveBPublished();
    await first.fetch();
    const back = cp.publishDeployment({ agentId: first.agentId, bundle: bundleA });
    const crash = crashAt('link-swapped');
    const dying = await deployAgent({ cp, baseUrl, clock, agent: first, stateDir: first.stateDir, options: { onStep: crash.onStep } });
    void dying.fetch();
    await crash.reached;

    const after = await restart(first);
    await after.fetch();
    await after.flush();
    expect(await after.current()).toBe(a.bundle.sha256);
    expect(after.state().deployment.current).toMatchObject({ deployment_id: back.deployment_id, state: 'rolled_back' });
    expect(after.state().deployment.previous).toMatchObject({ deployment_id: b.deployment_id });
    expect(reportsFor(cp, back)).toEqual([['rolled_back', null]]);
  });

  it('a crash in the middle of an extraction leaves a staging directory that the restart sweeps', async () => {
    const { first, a, b } = await aActiveBPublished();
    // What a kill during extraction leaves: a half-written staging directory.
    const staging = join(first.layout.bundlesDir, `.staging-${b.bundle.sha256.slice(0, 16)}-x1y2z3`);
    await mkdir(join(staging, 'conf'), { recursive: true });
    await writeFile(join(staging, 'conf/app.conf'), 'half');
    await symlink('bundles/nowhere', join(first.layout.root, '.current.tmp-abc123'));

    const after = await restart(first);
    await after.fetch();
    expect(await after.current()).toBe(b.bundle.sha256);
    expect(await cacheContents(after.layout)).toEqual({ bundles: [a.bundle.sha256, b.bundle.sha256].sort(), downloads: [], stray: [] });
  });
});

describe('on start, current is brought in line with state.json', () => {
  it('repoints a link that names another bundle', async () => {
    const { first, a } = await aActiveBPublished();
    await rm(first.layout.currentLink);
    await symlink('bundles/elsewhere', first.layout.currentLink);
    const after = await restart(first);
    cp.clearDeployment();
    await after.fetch();
    expect(await after.current()).toBe(a.bundle.sha256);
    expect(after.logs.records.some((r) => r.level === 'warn' && String(r.msg).includes('repointing'))).toBe(true);
  });

  it('fetches the deployment again when the active bundle vanished from disk', async () => {
    const first = await deployAgent({ cp, baseUrl, clock });
    const a = cp.publishDeployment({ agentId: first.agentId, bundle: bundleA });
    await first.fetch();
    await rm(first.layout.bundleDir(a.bundle.sha256), { recursive: true });

    const after = await restart(first);
    // A 304: the recovery forgets the missing bundle, and the remembered target is fetched again.
    await after.fetch();
    expect(cp.requestsTo('deployment').at(-1)?.status).toBe(304);
    expect(await after.current()).toBe(a.bundle.sha256);
    expect(after.logs.records.some((r) => r.level === 'error' && String(r.msg).includes('missing'))).toBe(true);
    expect(await readThroughCurrent(after.layout, 'conf/app.conf')).toBe('a\n');
    expect(cp.requestsTo('bundle')).toHaveLength(2);
  });

  it('resumes a download a restart interrupted, without reporting downloading twice', async () => {
    const { randomBytes } = await import('node:crypto');
    const first = await deployAgent({ cp, baseUrl, clock });
    const big = cp.publishDeployment({ agentId: first.agentId, bundle: buildBundleSync({ 'blob.bin': randomBytes(500_000) }) });
    cp.fault('bundle', { truncateAfterBytes: 200_000 });
    await expect(first.fetch()).rejects.toThrow();

    const after = await restart(first);
    await after.fetch();
    await after.flush();
    expect(await after.current()).toBe(big.bundle.sha256);
    expect(cp.requestsTo('bundle').map((r) => r.headers.range ?? null)).toEqual([null, 'bytes=200000-']);
    expect(reportsFor(cp, big).map(([s]) => s)).toEqual(['downloading', 'verifying', 'active']);
  });
});
