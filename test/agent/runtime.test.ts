import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { emptyState } from '../../src/state/agent-state.js';
import { buildBundle } from '../control-plane/bundles.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { LogCapture } from '../support/log-capture.js';
import { startHarness, type Harness } from '../support/runtime-harness.js';
import { tempDir } from '../support/tmp.js';
import { seededRandom, VirtualClock } from '../support/virtual-clock.js';

const clock = new VirtualClock();
const { cp, baseUrl } = setupControlPlane({ now: () => clock.now() });

const running: Harness[] = [];
async function harness(options: Partial<Parameters<typeof startHarness>[0]> = {}): Promise<Harness> {
  const h = await startHarness({ cp, baseUrl, clock, ...options });
  running.push(h);
  return h;
}

afterEach(async () => {
  for (const h of running.splice(0)) {
    await h.runtime.stop();
    // No runtime key may appear in any log line, whatever the test did.
    expect(h.logs.text()).not.toContain(h.apiKey);
  }
});

const sentAt = (agentId: string): number[] => cp.heartbeatsOf(agentId).map((hb) => Date.parse(hb.body.sent_at));
const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - (times[i] as number));

async function stateWithSequence(sequence: number): Promise<string> {
  const dir = await tempDir('byteor-state-');
  const state = emptyState();
  state.heartbeat.sequence = sequence;
  await writeFile(join(dir, 'state.json'), JSON.stringify(state));
  return dir;
}

describe('heartbeats', () => {
  it('sends the first heartbeat of a fresh install at once, then follows the advised interval with jitter', async () => {
    cp.setHeartbeatInterval(10);
    const h = await harness();
    const start = clock.now();
    h.runtime.start();
    await h.advance(120_000);
    const times = sentAt(h.agentId);
    // Within half a second of start: with the process start, within 1 s of spawn.
    expect(times[0]! - start).toBeLessThanOrEqual(500);
    expect(times.length).toBeGreaterThanOrEqual(10);
    for (const gap of gaps(times)) {
      expect(gap).toBeGreaterThanOrEqual(8_000);
      expect(gap).toBeLessThanOrEqual(12_000);
    }
    const first = cp.heartbeatsOf(h.agentId)[0]!.body;
    expect(first).toMatchObject({ sequence: 1, status: 'healthy', deployment: null, outbox: { pending: 0, pending_bytes: 0, rejected: 0 }, problems: [] });
    expect(first.host.cpu_count).toBeGreaterThan(0);
    expect(first.host.mem_total_bytes).toBeGreaterThan(0);
  });

  it('clamps an advised interval to [5, 3600] s', async () => {
    cp.setHeartbeatInterval(1);
    const h = await harness();
    h.runtime.start();
    await h.advance(60_000);
    for (const gap of gaps(sentAt(h.agentId))) expect(gap).toBeGreaterThanOrEqual(4_000);
    expect((await h.readJson('state.json')).heartbeat).toMatchObject({ interval_seconds: 5 });
  });

  it('spreads the first heartbeats of 100 restarted agents over the whole interval', async () => {
    const agents: Harness[] = [];
    for (let i = 0; i < 100; i += 1) {
      agents.push(await harness({ stateDir: await stateWithSequence(7), random: seededRandom(1000 + i), logs: new LogCapture() }));
    }
    const start = clock.now();
    for (const a of agents) a.runtime.start();
    await clock.advance(37_000, async () => {
      await Promise.all(agents.map((a) => a.runtime.scheduler.whenIdle()));
    });
    const firsts = agents.map((a) => sentAt(a.agentId)[0]! - start);
    // The steady-state phase of a period jittered ±20 %: within 1.2 intervals, most within 0.8.
    expect(firsts.every((ms) => ms >= 0 && ms <= 36_000)).toBe(true);
    expect(firsts.filter((ms) => ms > 24_000).length).toBeLessThanOrEqual(35);
    // Eight 3-second buckets over the first 24 s: an even spread puts ~10 agents in each; a burst would fill one.
    const buckets = new Array<number>(8).fill(0);
    for (const ms of firsts) if (ms < 24_000) buckets[Math.floor(ms / 3_000)]! += 1;
    expect(Math.max(...buckets)).toBeLessThanOrEqual(20);
    expect(Math.min(...buckets)).toBeGreaterThanOrEqual(3);
    expect(Math.max(...firsts) - Math.min(...firsts)).toBeGreaterThan(25_000);
  });

  it('continues the sequence after a restart', async () => {
    const first = await harness();
    first.runtime.start();
    await first.advance(70_000);
    await first.runtime.stop();
    const sent = cp.heartbeatsOf(first.agentId).map((hb) => hb.body.sequence);
    expect(sent).toEqual(sent.map((_, i) => i + 1));
    const second = await harness({ agent: { agentId: first.agentId, apiKey: first.apiKey }, stateDir: first.stateDir });
    second.runtime.start();
    await second.advance(37_000);
    const after = cp.heartbeatsOf(first.agentId).map((hb) => hb.body.sequence);
    expect(after[sent.length]).toBe(sent.length + 1);
  });
});

describe('failures and backoff', () => {
  it('waits at least Retry-After after a 429', async () => {
    const h = await harness();
    cp.fault('heartbeat', { status: 429, retryAfter: '7' });
    h.runtime.start();
    await h.advance(20_000);
    const attempts = cp.requestsTo('heartbeat');
    expect(attempts[0]!.status).toBe(429);
    expect(attempts[1]!.status).toBe(200);
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(7_000);
  });

  it('honours Retry-After given as an HTTP-date', async () => {
    const h = await harness();
    cp.fault('heartbeat', { status: 503, retryAfter: new Date(clock.now() + 40_000).toUTCString() });
    h.runtime.start();
    await h.advance(60_000);
    const attempts = cp.requestsTo('heartbeat');
    expect(attempts[1]!.at - clock.now()).toBeLessThan(0);
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(39_000);
  });

  it('backs off exponentially through a run of 5xx, never beyond 5 minutes', async () => {
    const h = await harness({ random: () => 0.9 });
    cp.fault('heartbeat', { status: 502, times: 14 });
    h.runtime.start();
    await h.advance(60 * 60_000);
    const attempts = cp.requestsTo('heartbeat');
    const failing = attempts.filter((r) => r.status === 502);
    expect(failing).toHaveLength(14);
    const delays = gaps(attempts.slice(0, 15).map((r) => r.at));
    for (let i = 1; i < delays.length; i += 1) expect(delays[i]!).toBeGreaterThanOrEqual(delays[i - 1]!);
    expect(delays[0]).toBe(900);
    expect(Math.max(...delays)).toBeLessThanOrEqual(5 * 60_000);
    expect(delays.at(-1)).toBe(270_000);
    expect(attempts[14]!.status).toBe(200);
    // Other jobs keep their own rhythm meanwhile.
    expect(cp.requestsTo('deployment').length).toBeGreaterThan(30);
  });

  it('retries a dropped connection quickly', async () => {
    const h = await harness();
    cp.fault('heartbeat', { drop: true });
    h.runtime.start();
    await h.advance(5_000);
    const attempts = cp.requestsTo('heartbeat');
    expect(attempts.map((r) => r.status)).toEqual([0, 200]);
    expect(attempts[1]!.at - attempts[0]!.at).toBeLessThanOrEqual(1_000);
  });
});

describe('deployment fetch', () => {
  it('reuses the ETag across restarts and handles 304 and 204', async () => {
    const first = await harness();
    const bundle = await buildBundle({ 'spec.kv': 'a=1\n' });
    cp.publishDeployment({ agentId: first.agentId, bundle });
    first.runtime.start();
    await first.advance(2_000);
    await first.runtime.stop();
    const fetched = cp.requestsTo('deployment');
    expect(fetched[0]!.status).toBe(200);
    const etag = cp.deploymentFor(first.agentId)!.etag;

    const second = await harness({ agent: { agentId: first.agentId, apiKey: first.apiKey }, stateDir: first.stateDir });
    second.runtime.start();
    // A restart spreads the first fetch over the interval (up to 1.2 × 60 s).
    await second.advance(73_000);
    const refetch = cp.requestsTo('deployment')[1]!;
    expect(refetch.headers['if-none-match']).toBe(etag);
    expect(refetch.status).toBe(304);

    cp.clearDeployment({ agentId: first.agentId });
    await second.advance(75_000);
    expect(cp.requestsTo('deployment').map((r) => r.status)).toContain(204);
    expect((await second.readJson('state.json')).etags).toMatchObject({ deployment: null });
  });
});

describe('signing keys', () => {
  it('follows a rotation, ignores a garbage key set and keeps the last good one', async () => {
    const oldKid = cp.currentKid();
    const h = await harness({ extra: { intervals: { signingKeysMs: 60_000 } } });
    h.runtime.start();
    await h.advance(2_000);
    expect(((await h.readJson('keys.json')).keys as { kid: string }[]).map((k) => k.kid)).toEqual([oldKid]);

    const newKid = cp.addSigningKey();
    cp.removeSigningKey(oldKid);
    await h.advance(75_000);
    expect(((await h.readJson('keys.json')).keys as { kid: string }[]).map((k) => k.kid)).toEqual([newKid]);
    expect(cp.requestsTo('signing-keys').some((r) => r.headers['if-none-match'] !== undefined)).toBe(true);

    cp.setJwksOverride({ keys: [{ kty: 'RSA', kid: 'rsa-1', n: 'abc', e: 'AQAB' }] });
    await h.advance(75_000);
    expect(((await h.readJson('keys.json')).keys as { kid: string }[]).map((k) => k.kid)).toEqual([newKid]);
    cp.setJwksOverride('this is not json' as unknown);
    await h.advance(75_000);
    expect(((await h.readJson('keys.json')).keys as { kid: string }[]).map((k) => k.kid)).toEqual([newKid]);
    expect(h.logs.records.some((r) => r.level === 'warn' && String(r.msg).includes('no usable key'))).toBe(true);
  });

  it('refreshes at most once a minute for an unknown kid', async () => {
    const h = await harness();
    h.runtime.start();
    await h.advance(2_000);
    const before = cp.requestsTo('signing-keys').length;
    const signal = new AbortController().signal;
    expect(await h.runtime.ctx.signingKeys.refreshForUnknownKid('nope', signal)).toBe(false);
    await clock.advance(61_000);
    expect(await h.runtime.ctx.signingKeys.refreshForUnknownKid('nope', signal)).toBe(true);
    expect(await h.runtime.ctx.signingKeys.refreshForUnknownKid('nope', signal)).toBe(false);
    expect(cp.requestsTo('signing-keys').length).toBe(before + 1);
  });
});

describe('state', () => {
  it('sets a corrupt state.json aside and runs with a clean state', async () => {
    const dir = await tempDir('byteor-state-');
    await writeFile(join(dir, 'state.json'), '{"version":1, "heartbeat": {');
    const h = await harness({ stateDir: dir });
    h.runtime.start();
    await h.advance(2_000);
    const names = await readdir(dir);
    expect(names.some((n) => n.startsWith('state.json.corrupt-'))).toBe(true);
    expect(cp.heartbeatsOf(h.agentId)[0]!.body.sequence).toBe(1);
    expect(h.logs.records.some((r) => r.level === 'warn' && String(r.msg).includes('corrupt'))).toBe(true);
    expect(await readFile(join(dir, names.find((n) => n.startsWith('state.json.corrupt-'))!), 'utf8')).toContain('"heartbeat"');
  });

  it('writes status.json after each run', async () => {
    const h = await harness();
    h.runtime.start();
    await h.advance(2_000);
    const status = await h.readJson('status.json');
    expect(status).toMatchObject({ schema: 1, agent_id: h.agentId, state: 'healthy', heartbeat: { sequence: 1 } });
  });
});

