/** Longest wait we accept from a server; a larger value is treated as this (a day). */
export const MAX_RETRY_AFTER_MS = 24 * 60 * 60 * 1000;

/**
 * Parses a Retry-After header (delta-seconds or an HTTP-date, RFC 9110 §10.2.3) into the delay
 * in milliseconds from `nowMs`. Undefined when absent or unparseable; never negative.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed) * 1000, MAX_RETRY_AFTER_MS);
  // Only HTTP-date forms, not any string Date.parse happens to accept.
  if (!/^[A-Za-z]{3},? .*\b(GMT|UTC)$|^[A-Za-z]+, \d{2}-[A-Za-z]{3}-\d{2} |^[A-Za-z]{3} [A-Za-z]{3} /.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - nowMs), MAX_RETRY_AFTER_MS);
}

/**
 * When Retry-After is missing but the budget is spent (X-RateLimit-Remaining: 0), the reset time
 * (unix seconds) says the same thing.
 */
export function rateLimitResetDelay(remaining: string | null, reset: string | null, nowMs: number): number | undefined {
  if (remaining === null || reset === null || remaining.trim() !== '0' || !/^\d+$/.test(reset.trim())) return undefined;
  return Math.min(Math.max(0, Number(reset.trim()) * 1000 - nowMs), MAX_RETRY_AFTER_MS);
}
