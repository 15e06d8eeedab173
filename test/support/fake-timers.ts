import { vi } from 'vitest';

/**
 * Fakes setTimeout/clearTimeout only (I/O and setImmediate stay real), for code whose waits come
 * from libraries (p-retry). Call in a test; vitest restores real timers via useRealTimers().
 */
export function useFakeTimeouts(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
}

/**
 * Drives `work` to completion under fake timeouts: lets real I/O run, then jumps virtual time
 * ahead a second, until it settles. (Virtual time also passes while I/O is pending, like a slow
 * disk would make it, so assert on counts, not on elapsed virtual time.)
 */
export async function runWithFakeTimeouts<T>(work: Promise<T>, stepMs = 1_000): Promise<{ result: T }> {
  let settled = false;
  const tracked = work.finally(() => {
    settled = true;
  });
  tracked.catch(() => undefined);
  while (!settled) {
    await new Promise((resolve) => setImmediate(resolve));
    if (settled) break;
    await vi.advanceTimersByTimeAsync(stepMs);
  }
  return { result: await tracked };
}
