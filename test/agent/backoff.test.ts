import { describe, expect, it } from 'vitest';
import { RateLimitedError, TransientError, UnauthorizedError, ForbiddenError } from '../../src/api/errors.js';
import { backoffDelay, dispositionOf, jittered, nextDelay, startupDelay, TIMING } from '../../src/agent/backoff.js';
import { FRESH_HEARTBEAT_SPREAD_MS, HeartbeatJob, type HeartbeatDeps } from '../../src/agent/jobs/heartbeat.js';
import { emptyState } from '../../src/state/agent-state.js';
import { seededRandom } from '../support/virtual-clock.js';
import { AbortedError } from '../../src/errors.js';

const facts = { method: 'POST', path: '/x' };

describe('next-delay decision', () => {
  it('keeps healthy runs within ±20 % of the interval', () => {
    expect(jittered(30_000, 0)).toBe(24_000);
    expect(jittered(30_000, 0.5)).toBe(30_000);
    expect(jittered(30_000, 0.999999)).toBeLessThanOrEqual(36_000);
  });

  it('grows the backoff window exponentially from 1 s and caps it at 5 min', () => {
    const windows = [1, 2, 3, 4, 5, 10, 20, 50].map((failures) => backoffDelay(failures, 0.999999));
    expect(windows.slice(0, 5).map((ms) => Math.round(ms / 1000))).toEqual([1, 2, 4, 8, 16]);
    for (const ms of windows) expect(ms).toBeLessThanOrEqual(TIMING.backoffCapMs);
    expect(windows.at(-1)).toBeGreaterThan(TIMING.backoffCapMs - 1000);
  });

  it('uses full jitter, never below a small floor', () => {
    expect(backoffDelay(8, 0)).toBe(TIMING.minRetryMs);
    expect(backoffDelay(8, 0.5)).toBe(64_000);
  });

  it('never retries sooner than Retry-After', () => {
    for (const random of [0, 0.3, 0.99]) {
      const delay = nextDelay({ disposition: { kind: 'transient', retryAfterMs: 7_000 }, intervalMs: 30_000, failures: 1, random });
      expect(delay).toBeGreaterThanOrEqual(7_000);
      expect(delay).toBeLessThanOrEqual(7_700);
    }
    // A longer backoff window still wins over a short Retry-After.
    expect(nextDelay({ disposition: { kind: 'transient', retryAfterMs: 1_000 }, intervalMs: 30_000, failures: 9, random: 0.5 })).toBe(128_000);
  });

  it('re-checks a rejected key every 5 min and a missing scope every 15 min, with jitter', () => {
    expect(nextDelay({ disposition: { kind: 'unauthorized' }, intervalMs: 30_000, failures: 0, random: 0.5 })).toBe(300_000);
    expect(nextDelay({ disposition: { kind: 'forbidden', scope: 'agent:heartbeat' }, intervalMs: 30_000, failures: 0, random: 0.5 })).toBe(900_000);
    expect(nextDelay({ disposition: { kind: 'unauthorized' }, intervalMs: 30_000, failures: 0, random: 0 })).toBe(240_000);
  });

  it('classifies job errors', () => {
    expect(dispositionOf(undefined)).toEqual({ kind: 'success' });
    expect(dispositionOf(new UnauthorizedError({ ...facts, status: 401 }))).toEqual({ kind: 'unauthorized' });
    expect(dispositionOf(new ForbiddenError({ ...facts, status: 403 }, 'agent:artifact_upload'))).toEqual({ kind: 'forbidden', scope: 'agent:artifact_upload' });
    expect(dispositionOf(new RateLimitedError({ ...facts, status: 429 }, 7000))).toEqual({ kind: 'transient', retryAfterMs: 7000 });
    expect(dispositionOf(new TransientError(facts, 'network', 'x'))).toEqual({ kind: 'transient', retryAfterMs: undefined });
    expect(dispositionOf(new AbortedError())).toEqual({ kind: 'stopped' });
    // A bug or a disk error must not stop the agent: back off and try again.
    expect(dispositionOf(new Error('EIO'))).toEqual({ kind: 'transient', retryAfterMs: undefined });
  });
});

describe('first run after start', () => {
  it('spreads a short window uniformly (fresh installs: the first heartbeat within 1 s)', () => {
    expect(startupDelay(1_000, 0, 30_000)).toBe(0);
    expect(startupDelay(1_000, 0.999, 30_000)).toBe(999);
    expect(startupDelay(1_000, 0.5)).toBe(500);
  });

  it("schedules a fresh install's first heartbeat within 0.5 s of start (1 s of spawn), a restarted one over the interval", () => {
    const state = emptyState();
    // Only the state is read to decide the spread; the rest of the job is not involved.
    const job = new HeartbeatJob({ store: { state }, now: Date.now } as unknown as HeartbeatDeps);
    expect(job.startupSpreadMs()).toBe(FRESH_HEARTBEAT_SPREAD_MS);
    expect(startupDelay(job.startupSpreadMs(), 0.999999, job.intervalMs())).toBeLessThanOrEqual(500);
    state.heartbeat.sequence = 12;
    expect(job.startupSpreadMs()).toBe(30_000);
  });

  it('after a restart, draws the steady-state phase: uniform to 0.8 interval, then tapering to 1.2', () => {
    expect(startupDelay(30_000, 0.4, 30_000)).toBe(12_000);
    expect(startupDelay(30_000, 0.8, 30_000)).toBe(24_000);
    expect(startupDelay(30_000, 0.9875, 30_000)).toBe(33_000);
    expect(startupDelay(30_000, 0.999999, 30_000)).toBeLessThanOrEqual(36_000);
  });

  /** Requests per second of `agents` jobs started together, each then repeating with the jittered interval. */
  function fleetRate(agents: number, first: (random: number) => number, intervalMs: number, horizonMs: number): number[] {
    const random = seededRandom(7);
    const perSecond = new Array<number>(Math.ceil(horizonMs / 1000)).fill(0);
    for (let i = 0; i < agents; i += 1) {
      for (let at = first(random()); at < horizonMs; at += jittered(intervalMs, random())) perSecond[Math.floor(at / 1000)]! += 1;
    }
    return perSecond;
  }

  it('keeps a restarted fleet at its steady rate from the start, where a uniform spread overshoots', () => {
    const agents = 30_000;
    const steady = agents / 30; // per second
    const restarted = fleetRate(agents, (r) => startupDelay(30_000, r, 30_000), 30_000, 120_000);
    expect(Math.max(...restarted) / steady).toBeLessThan(1.1);
    expect(Math.min(...restarted) / steady).toBeGreaterThan(0.9);
    const uniform = fleetRate(agents, (r) => Math.round(30_000 * r), 30_000, 120_000);
    expect(Math.max(...uniform) / steady).toBeGreaterThan(1.3);
  });
});
