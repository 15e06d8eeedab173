import type { Clock } from '../../src/agent/clock.js';

interface Timer {
  id: number;
  at: number;
  seq: number;
  callback: () => void;
}

/**
 * Virtual time for the scheduler: timers fire only when a test advances the clock, one at a time
 * in due order, and after each the test's `settle` (e.g. scheduler.whenIdle) lets the fired work
 * finish, so timing assertions are exact and never wait on the wall clock.
 */
export class VirtualClock implements Clock {
  private current: number;
  private timers: Timer[] = [];
  private nextId = 1;
  private seq = 0;

  constructor(start = Date.parse('2026-12-04T12:00:00.000Z')) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const timer: Timer = { id: this.nextId++, at: this.current + Math.max(0, ms), seq: this.seq++, callback };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Due times of pending timers, soonest first. */
  pending(): number[] {
    return this.timers.map((t) => t.at).sort((a, b) => a - b);
  }

  /** Fires every timer due within `ms`, in order, settling after each; ends exactly `ms` later. */
  async advance(ms: number, settle: () => Promise<void> = async () => undefined): Promise<void> {
    const end = this.current + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0];
      if (next === undefined || next.at > end) break;
      this.timers.shift();
      this.current = Math.max(this.current, next.at);
      next.callback();
      await settle();
    }
    this.current = end;
  }

  /** Advances to the next timer only (if any), and returns the time it fired at. */
  async step(settle: () => Promise<void> = async () => undefined): Promise<number | undefined> {
    const next = this.pending()[0];
    if (next === undefined) return undefined;
    await this.advance(next - this.current, settle);
    return next;
  }
}

/** A deterministic uniform source (mulberry32), so jitter is reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
