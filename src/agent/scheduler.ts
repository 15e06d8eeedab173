import { ApiError } from '../api/errors.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { dispositionOf, nextDelay, startupDelay, type Disposition } from './backoff.js';
import type { Clock, RandomSource } from './clock.js';

export interface Job {
  readonly name: string;
  /** Healthy period, read at each scheduling decision (the heartbeat adopts the server's advice). */
  intervalMs(): number;
  /**
   * The first run after start lands within this window (0: right away): uniformly when it is
   * shorter than the interval; when it is the whole interval, as a steady-state phase (see
   * startupDelay), which may reach 1.2 × the interval.
   */
  startupSpreadMs(): number;
  /**
   * Throws typed errors (api/errors.ts) on failure; the scheduler decides what they mean. Resolves
   * 'idle' when it had nothing to do and sent no request (an empty outbox): such a run proves
   * nothing about the credential, so it does not end an `unauthorized` state.
   */
  run(signal: AbortSignal): Promise<void | 'idle'>;
}

export interface RunReport {
  job: string;
  startedAt: number;
  finishedAt: number;
  disposition: Disposition;
  error: unknown;
  /** Consecutive transient failures after this run (0 after a success). */
  failures: number;
  /** The job succeeded without sending a request. */
  idle: boolean;
  nextRunAt: number;
}

interface Slot {
  job: Job;
  timer: unknown;
  running: Promise<void> | undefined;
  failures: number;
  rerun: boolean;
  /** Earliest time a trigger may run the job: backoff and Retry-After are never bypassed. */
  notBefore: number;
  nextRunAt: number;
}

export interface SchedulerOptions {
  clock: Clock;
  random: RandomSource;
  logger: Logger;
  /** Called after every run, e.g. to write status.json; errors are logged, never fatal. */
  onRunEnd?: (report: RunReport) => void | Promise<void>;
}

/**
 * Runs each job periodically with jitter, per-job backoff and Retry-After, until stop().
 * One job's failure never touches another's timing.
 */
export class Scheduler {
  private readonly slots = new Map<string, Slot>();
  private readonly controller = new AbortController();
  private started = false;

  constructor(
    jobs: readonly Job[],
    private readonly options: SchedulerOptions,
  ) {
    for (const job of jobs) {
      this.slots.set(job.name, { job, timer: undefined, running: undefined, failures: 0, rerun: false, notBefore: 0, nextRunAt: 0 });
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    for (const slot of this.slots.values()) this.schedule(slot, startupDelay(slot.job.startupSpreadMs(), this.options.random(), slot.job.intervalMs()));
  }

  /** Runs `name` soon (after `delayMs`), but never before its backoff allows. */
  trigger(name: string, delayMs = 0): void {
    const slot = this.slots.get(name);
    if (slot === undefined || this.controller.signal.aborted || !this.started) return;
    if (slot.running !== undefined) {
      slot.rerun = true;
      return;
    }
    const now = this.options.clock.now();
    const at = Math.max(now + delayMs, slot.notBefore);
    if (at < slot.nextRunAt) this.schedule(slot, at - now);
  }

  /**
   * Resolves once no job is running (including the rescheduling that follows a run). Tests drive
   * virtual time with it: fire a timer, then wait for the system to settle.
   */
  async whenIdle(): Promise<void> {
    for (;;) {
      const running = [...this.slots.values()].map((slot) => slot.running).filter((p): p is Promise<void> => p !== undefined);
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  /** When each job runs next (unix ms), for status output. */
  nextRuns(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, slot] of this.slots) out[name] = slot.nextRunAt;
    return out;
  }

  /** Stops scheduling, aborts in-flight runs and waits for them to settle. */
  async stop(): Promise<void> {
    this.controller.abort();
    for (const slot of this.slots.values()) {
      if (slot.timer !== undefined) this.options.clock.clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    await Promise.all([...this.slots.values()].map((slot) => slot.running ?? Promise.resolve()));
  }

  /** Runs every job once, one after another, in the order given (for `run --once`). */
  async runOnce(): Promise<RunReport[]> {
    const reports: RunReport[] = [];
    for (const slot of this.slots.values()) {
      if (this.controller.signal.aborted) break;
      reports.push(await this.execute(slot));
    }
    return reports;
  }

  private schedule(slot: Slot, delayMs: number): void {
    if (this.controller.signal.aborted || !Number.isFinite(delayMs)) return;
    if (slot.timer !== undefined) this.options.clock.clearTimeout(slot.timer);
    const delay = Math.max(0, Math.round(delayMs));
    slot.nextRunAt = this.options.clock.now() + delay;
    slot.timer = this.options.clock.setTimeout(() => {
      slot.timer = undefined;
      slot.running = this.execute(slot).then(
        (report) => {
          slot.running = undefined;
          if (slot.rerun) {
            slot.rerun = false;
            this.schedule(slot, Math.max(0, slot.notBefore - this.options.clock.now()));
          } else {
            this.schedule(slot, report.nextRunAt - this.options.clock.now());
          }
        },
        () => {
          // execute() never rejects; this only keeps the promise chain total.
          slot.running = undefined;
        },
      );
    }, delay);
  }

  private async execute(slot: Slot): Promise<RunReport> {
    const { clock, logger } = this.options;
    const startedAt = clock.now();
    let error: unknown;
    let idle = false;
    try {
      idle = (await slot.job.run(this.controller.signal)) === 'idle';
    } catch (err) {
      error = err ?? new Error('job failed without an error');
    }
    const finishedAt = clock.now();
    const disposition = dispositionOf(error);
    const previousFailures = slot.failures;
    slot.failures = disposition.kind === 'transient' ? slot.failures + 1 : 0;
    const delay = nextDelay({ disposition, intervalMs: slot.job.intervalMs(), failures: slot.failures, random: this.options.random() });
    slot.notBefore = disposition.kind === 'success' ? finishedAt : finishedAt + delay;
    const report: RunReport = { job: slot.job.name, startedAt, finishedAt, disposition, error, failures: slot.failures, idle, nextRunAt: finishedAt + delay };

    if (disposition.kind === 'transient') {
      // The first failure and every tenth after it at warn; the rest at debug: no flood in an outage.
      const level = slot.failures === 1 || slot.failures % 10 === 0 ? 'warn' : 'debug';
      logger[level](
        { job: slot.job.name, failures: slot.failures, retryInMs: delay, ...(error instanceof ApiError ? error.toLogFields() : {}), err: error instanceof ApiError ? undefined : error },
        `${slot.job.name} failed (${errorMessage(error)}); retrying in ${Math.ceil(delay / 1000)} s`,
      );
    } else if (disposition.kind === 'success' && previousFailures > 0) {
      logger.info({ job: slot.job.name, failures: previousFailures }, `${slot.job.name} recovered after ${previousFailures} failed attempt(s)`);
    } else if (disposition.kind === 'success') {
      logger.debug({ job: slot.job.name, tookMs: finishedAt - startedAt, nextInMs: delay }, `${slot.job.name} ok`);
    }

    try {
      await this.options.onRunEnd?.(report);
    } catch (err) {
      logger.error({ err, job: slot.job.name }, 'recording a job run failed');
    }
    return report;
  }
}
