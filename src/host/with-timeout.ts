/**
 * Resolves to `fallback()` when `work` has not settled within `ms` or rejects. Host probing must
 * never hold up a heartbeat, and a timer that fires after the fact is harmless.
 */
export async function withTimeout<T>(work: Promise<T>, ms: number, fallback: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback()), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work.catch(() => fallback()), timeout]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}
