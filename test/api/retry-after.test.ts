import { describe, expect, it } from 'vitest';
import { MAX_RETRY_AFTER_MS, parseRetryAfter, rateLimitResetDelay } from '../../src/api/retry-after.js';

const NOW = Date.parse('2026-12-04T19:40:00.000Z');

describe('Retry-After', () => {
  it('reads delta-seconds', () => {
    expect(parseRetryAfter('7', NOW)).toBe(7000);
    expect(parseRetryAfter(' 0 ', NOW)).toBe(0);
  });

  it('reads an HTTP-date relative to now, never negative', () => {
    expect(parseRetryAfter('Fri, 04 Dec 2026 19:40:30 GMT', NOW)).toBe(30_000);
    expect(parseRetryAfter('Fri, 04 Dec 2026 19:39:00 GMT', NOW)).toBe(0);
  });

  it('ignores garbage rather than guessing', () => {
    for (const value of ['soon', '-5', '1.5', '', 'tomorrow at noon', null, undefined]) expect(parseRetryAfter(value, NOW)).toBeUndefined();
  });

  it('caps absurd waits at a day', () => {
    expect(parseRetryAfter('99999999', NOW)).toBe(MAX_RETRY_AFTER_MS);
  });

  it('falls back to X-RateLimit-Reset only when the budget is spent', () => {
    const reset = String(NOW / 1000 + 12);
    expect(rateLimitResetDelay('0', reset, NOW)).toBe(12_000);
    expect(rateLimitResetDelay('3', reset, NOW)).toBeUndefined();
  });
});
