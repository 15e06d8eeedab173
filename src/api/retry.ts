import pRetry, { AbortError } from 'p-retry';
import { AbortedError } from '../errors.js';
import { sleep } from '../util/sleep.js';
import { ApiError, RateLimitedError } from './errors.js';

export interface RetryOptions {
  /** Attempts in all, the first included. */
  attempts: number;
  /** No new attempt starts after this long since the first. */
  maxRetryTimeMs: number;
  minDelayMs?: number;
  maxDelayMs?: number;
  signal?: AbortSignal | undefined;
  onRetry?: (info: { attempt: number; error: ApiError; waitMs: number | undefined }) => void;
  /** For tests: how to wait out a Retry-After. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Retries an API call on transient failures only (network, timeouts, 5xx, 429), never sooner
 * than a Retry-After says: p-retry has no custom-delay hook, so the wait happens in
 * onFailedAttempt and such attempts do not consume a retry.
 */
export async function withRetries<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const wait = options.sleep ?? sleep;
  const startedAt = Date.now();
  try {
    return await pRetry(
      async (attempt) => {
        try {
          return await operation(attempt);
        } catch (err) {
          if (err instanceof ApiError && err.retryable) throw err;
          // Everything else (401, 403, 4xx, aborts, programming errors) is final: stop now.
          throw new AbortError(err instanceof Error ? err : new Error(String(err)));
        }
      },
      {
        retries: Math.max(0, options.attempts - 1),
        minTimeout: options.minDelayMs ?? 1_000,
        maxTimeout: options.maxDelayMs ?? 30_000,
        factor: 2,
        randomize: true,
        maxRetryTime: options.maxRetryTimeMs,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        onFailedAttempt: async ({ error, attemptNumber }) => {
          if (!(error instanceof ApiError)) return;
          const waitMs = error instanceof RateLimitedError ? error.retryAfterMs : undefined;
          // Waiting past our own deadline only to give up: give up now, with the server's answer.
          if (waitMs !== undefined && Date.now() - startedAt + waitMs > options.maxRetryTimeMs) throw error;
          options.onRetry?.({ attempt: attemptNumber, error, waitMs });
          if (waitMs !== undefined && waitMs > 0) await wait(waitMs, options.signal);
        },
        // A told-to-wait failure is the server pacing us, not a fault: it does not use up an attempt.
        shouldConsumeRetry: ({ error }) => !(error instanceof RateLimitedError && error.retryAfterMs !== undefined),
      },
    );
  } catch (err) {
    if (options.signal?.aborted === true && !(err instanceof ApiError)) throw new AbortedError();
    throw err;
  }
}
