import type { FaultOptions, FaultRoute, RouteName } from './types.js';

/**
 * Fault injection: each fault applies to the next `times` requests of its route (or of every
 * route for '*'). A route's own faults are taken before '*' ones, oldest first, one per request.
 */

interface ArmedFault {
  route: FaultRoute;
  options: FaultOptions;
  remaining: number;
}

export class FaultBook {
  private armed: ArmedFault[] = [];
  /** While true every route (not the admin API) drops its connections. */
  outage = false;

  add(route: FaultRoute, options: FaultOptions): void {
    const times = options.times ?? 1;
    if (!(times > 0)) throw new Error('fault times must be > 0');
    this.armed.push({ route, options, remaining: times });
  }

  /** The fault for this request, consumed; undefined when none is armed. */
  take(route: RouteName): FaultOptions | undefined {
    const found = this.armed.find((fault) => fault.route === route) ?? this.armed.find((fault) => fault.route === '*');
    if (found === undefined) return undefined;
    found.remaining -= 1;
    if (found.remaining <= 0) this.armed = this.armed.filter((fault) => fault !== found);
    return found.options;
  }

  /** Faults still armed (times not used up), for tests checking that a retry happened. */
  pending(): { route: FaultRoute; remaining: number; options: FaultOptions }[] {
    return this.armed.map((fault) => ({ route: fault.route, remaining: fault.remaining, options: fault.options }));
  }

  clear(): void {
    this.armed = [];
  }
}

/**
 * Waits `ms` on the global setTimeout, looked up at call time so vitest fake timers control it.
 * Resolves false (and clears the timer) as soon as `signal` aborts: a client that gives up must
 * not leave a timer behind.
 */
export function abortableDelay(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted === true) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
