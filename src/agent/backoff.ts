import { ForbiddenError, RateLimitedError, UnauthorizedError } from '../api/errors.js';
import { AbortedError } from '../errors.js';

/** DESIGN.md "Runtime behaviour": the timing rules, as data. */
export const TIMING = {
  backoffBaseMs: 1_000,
  backoffCapMs: 5 * 60_000,
  /** Floor for a retry so full jitter never spins. */
  minRetryMs: 100,
  /** Each periodic run lands within ±20 % of its interval. */
  jitterFraction: 0.2,
  unauthorizedRecheckMs: 5 * 60_000,
  forbiddenRecheckMs: 15 * 60_000,
} as const;

/** What a job run's end means for scheduling. */
export type Disposition =
  | { kind: 'success' }
  | { kind: 'transient'; retryAfterMs: number | undefined }
  | { kind: 'unauthorized' }
  | { kind: 'forbidden'; scope: string | undefined }
  | { kind: 'stopped' };

/** Classifies a job's thrown error; anything unexpected is treated as transient, never fatal. */
export function dispositionOf(err: unknown): Disposition {
  if (err === undefined) return { kind: 'success' };
  if (err instanceof AbortedError) return { kind: 'stopped' };
  if (err instanceof UnauthorizedError) return { kind: 'unauthorized' };
  if (err instanceof ForbiddenError) return { kind: 'forbidden', scope: err.scope };
  if (err instanceof RateLimitedError) return { kind: 'transient', retryAfterMs: err.retryAfterMs };
  return { kind: 'transient', retryAfterMs: undefined };
}

/** interval × (1 ± jitterFraction), from one uniform random number in [0, 1). */
export function jittered(intervalMs: number, random: number, fraction: number = TIMING.jitterFraction): number {
  return Math.round(intervalMs * (1 + fraction * (2 * random - 1)));
}

/** Full-jitter exponential backoff: uniform in [0, min(cap, base × 2^(failures-1))]. */
export function backoffDelay(failures: number, random: number): number {
  const exponent = Math.min(Math.max(failures - 1, 0), 30);
  const window = Math.min(TIMING.backoffCapMs, TIMING.backoffBaseMs * 2 ** exponent);
  return Math.max(TIMING.minRetryMs, Math.round(window * random));
}

export interface NextDelayInput {
  disposition: Disposition;
  /** The job's period when healthy. */
  intervalMs: number;
  /** Consecutive failed runs including this one (0 after a success). */
  failures: number;
  /** Uniform random number in [0, 1). */
  random: number;
}

/**
 * When a job runs next (ms from now). Never sooner than Retry-After: the server's wait is a floor,
 * plus up to 10 % so a fleet told the same thing does not return in lockstep.
 */
export function nextDelay(input: NextDelayInput): number {
  const { disposition, intervalMs, failures, random } = input;
  switch (disposition.kind) {
    case 'success':
      return jittered(intervalMs, random);
    case 'unauthorized':
      return jittered(TIMING.unauthorizedRecheckMs, random);
    case 'forbidden':
      return jittered(TIMING.forbiddenRecheckMs, random);
    case 'stopped':
      return Number.POSITIVE_INFINITY;
    case 'transient': {
      const backoff = backoffDelay(failures, random);
      if (disposition.retryAfterMs === undefined) return backoff;
      return Math.max(backoff, disposition.retryAfterMs + Math.round(disposition.retryAfterMs * 0.1 * random));
    }
  }
}

/**
 * The first run after start, so a fleet started together does not arrive together.
 *
 * A spread shorter than the job's interval (a fresh install, no signing keys yet: soon) is uniform
 * within it. A spread of a whole interval (a restart: power restore, fleet-wide upgrade) is drawn
 * from the phase a job with a jittered period has in steady state: uniform over [0, (1−f)·I], then
 * falling linearly to zero at (1+f)·I (f = jitterFraction; the residual time of a period that is
 * uniform in [(1−f)·I, (1+f)·I]). The restarted fleet then runs at its steady request rate from the
 * first second. A plain uniform spread over [0, I] does not: the early starters' second runs
 * (jittered, from 0.8·I on) pile onto the late starters' first ones, 1.5× the steady rate around
 * t = I, then a dip; measured with scripts/bench/fleet.ts, that peaked at 2.0× steady.
 */
export function startupDelay(spreadMs: number, random: number, intervalMs: number = Number.POSITIVE_INFINITY): number {
  if (spreadMs < intervalMs) return Math.round(spreadMs * random);
  const f = TIMING.jitterFraction;
  // Inverse of that distribution's CDF: one uniform random number in, one delay out.
  const x = random <= 1 - f ? random : 1 + f - Math.sqrt(4 * f * (1 - random));
  return Math.round(intervalMs * x);
}
