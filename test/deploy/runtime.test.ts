import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildBundleSync } from '../control-plane/bundles.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { startHarness, type Harness } from '../support/runtime-harness.js';
import { VirtualClock } from '../support/virtual-clock.js';

const clock = new VirtualClock();
const { cp, baseUrl } = setupControlPlane({ now: () => clock.now() });

let running: Harness | undefined;
afterEach(async () => {
  await running?.runtime.stop();
  running = undefined;
});

async function start(): Promise<Harness> {
  running = await startHarness({ cp, baseUrl, clock });
  return running;
}

describe('the runtime runs the bundle pipeline by default', () => {
  it('activates a published deployment, reports it in order, and heartbeats carry it', async () => {
    const h = await start();
    const deployment = cp.publishDeployment({ agentId: h.agentId, bundle: buildBundleSync({ 'spec.kv': 'a=1\n' }) });
    h.runtime.start();
    await h.advance(5_000);

    const sha = deployment.bundle.sha256;
    expect(await readlink(join(h.stateDir, 'current'))).toBe(`bundles/${sha}`);
    expect(cp.statusReports.map((r) => r.body.state)).toEqual(['downloading', 'verifying', 'active']);

    await h.advance(35_000);
    expect(cp.heartbeatsOf(h.agentId).at(-1)?.body.deployment).toEqual({ deployment_id: deployment.deployment_id, bundle_sha256: sha, state: 'active' });
    const status = await h.readJson('status.json');
    expect(status.deployment).toMatchObject({ current: { deployment_id: deployment.deployment_id, state: 'active' }, failed: null });
    expect((status.jobs as Record<string, unknown>)['deployment-reports']).toBeDefined();
  });

  it('retries reports with backoff while the control plane fails, without losing or reordering any', async () => {
    const h = await start();
    cp.fault('status', { status: 503, times: 4 });
    const deployment = cp.publishDeployment({ agentId: h.agentId, bundle: buildBundleSync({ 'spec.kv': 'a=1\n' }) });
    h.runtime.start();
    await h.advance(5_000);
    expect(cp.statusReports).toHaveLength(0);
    expect((await h.readJson('state.json')).pending_reports).toHaveLength(3);

    await h.advance(120_000);
    expect(cp.requestsTo('status').map((r) => r.status)).toEqual([503, 503, 503, 503, 204, 204, 204]);
    expect(cp.statusReports.map((r) => [r.deploymentId, r.body.state])).toEqual([
      [deployment.deployment_id, 'downloading'],
      [deployment.deployment_id, 'verifying'],
      [deployment.deployment_id, 'active'],
    ]);
    expect((await h.readJson('state.json')).pending_reports).toEqual([]);
  });

  it('a failed deployment rides on heartbeats as a problem until a good one replaces it', async () => {
    const h = await start();
    cp.publishDeployment({ agentId: h.agentId, bundle: buildBundleSync({ 'spec.kv': 'a=1\n' }), sha256Override: 'a'.repeat(64) });
    h.runtime.start();
    await h.advance(40_000);
    const beat = cp.heartbeatsOf(h.agentId).at(-1)?.body;
    expect(beat?.status).toBe('degraded');
    expect(beat?.problems).toEqual([{ code: 'deployment_failed', message: expect.stringMatching(/failed \(digest_mismatch\)/) }]);
    expect(beat?.deployment).toBeNull();
    expect(cp.statusReports.map((r) => [r.body.state, r.body.reason])).toEqual([
      ['downloading', null],
      ['failed', 'digest_mismatch'],
    ]);

    // Ten more minutes of fetches: the same failed target is not downloaded again.
    await h.advance(10 * 60_000);
    expect(cp.requestsTo('bundle')).toHaveLength(1);

    const fixed = cp.publishDeployment({ agentId: h.agentId, bundle: buildBundleSync({ 'spec.kv': 'a=2\n' }) });
    await h.advance(2 * 60_000);
    const last = cp.heartbeatsOf(h.agentId).at(-1)?.body;
    expect(last?.problems).toEqual([]);
    expect(last?.deployment).toMatchObject({ deployment_id: fixed.deployment_id, state: 'active' });
  });

  it('stops promptly in the middle of a download, and resumes it after the restart', async () => {
    const { randomBytes } = await import('node:crypto');
    const h = await start();
    const deployment = cp.publishDeployment({ agentId: h.agentId, bundle: buildBundleSync({ 'blob.bin': randomBytes(300_000) }) });
    cp.fault('bundle', { truncateAfterBytes: 100_000 });
    h.runtime.start();
    await h.advance(3_000);
    await h.runtime.stop();
    running = undefined;

    const again = await startHarness({ cp, baseUrl, clock, agent: { agentId: h.agentId, apiKey: h.apiKey }, stateDir: h.stateDir });
    running = again;
    again.runtime.start();
    await again.advance(35_000);
    expect(await readlink(join(h.stateDir, 'current'))).toBe(`bundles/${deployment.bundle.sha256}`);
    expect(cp.requestsTo('bundle').map((r) => r.headers.range ?? null)).toEqual([null, 'bytes=100000-']);
    expect(cp.statusReports.map((r) => r.body.state)).toEqual(['downloading', 'verifying', 'active']);
  });
});
