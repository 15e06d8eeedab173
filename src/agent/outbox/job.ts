import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentClient } from '../../api/client.js';
import { ApiError } from '../../api/errors.js';
import { MAX_ARTIFACT_BYTES, type ArtifactType } from '../../api/types.js';
import { AbortedError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { StateLayout } from '../../state/layout.js';
import { formatBytes } from '../../util/format.js';
import type { Health } from '../health.js';
import type { Job } from '../scheduler.js';
import { cleanOnStart, ensureOutboxDirs, rejectEntry, removeEntry } from './disk.js';
import { entryKey, isVisibleName, scanOutbox, type OutboxEntry } from './entries.js';
import { checkEntry, checkSize, deferDelayMs, localProblemOf, onUploadFailure, packRejection, type LocalProblem, type Rejection } from './policy.js';
import { Preparer, type Prepared } from './prepare.js';
import { sendArtifact } from './send.js';
import { watchOutbox, type OutboxWatch } from './watch.js';

/** DESIGN.md: the outbox is scanned every 10 s, and on demand. */
export const OUTBOX_INTERVAL_MS = 10_000;
/** A burst of renames (a writer dropping several captures) becomes one run. */
export const OUTBOX_TRIGGER_DELAY_MS = 250;

/** Points in an entry's life where tests inject failures or kills. */
export type OutboxStage = 'packing' | 'prepared' | 'uploaded' | 'removing' | 'rejecting';

export interface OutboxHooks {
  /**
   * Awaited at each stage. Throwing behaves like an I/O failure at that point; a promise that never
   * settles freezes the job there, as a kill would (a test then starts a new runtime on the same
   * state directory).
   */
  stage?: (stage: OutboxStage, entry: OutboxEntry) => void | Promise<void>;
}

export interface OutboxJobOptions {
  client: AgentClient;
  layout: StateLayout;
  logger: Logger;
  health: Health;
  now: () => number;
  /** Asks the scheduler for a run after `delayMs` (never sooner than its backoff allows). */
  trigger: (delayMs: number) => void;
  intervalMs?: number | undefined;
  /** The artifact size cap (API.md: 64 MiB); smaller in tests. */
  maxBytes?: number;
  /** Watch the type directories for new entries (default true). */
  watch?: boolean;
  hooks?: OutboxHooks;
}

interface Deferral {
  until: number;
  failures: number;
  problem: LocalProblem;
  message: string;
  name: string;
}

const PROBLEMS: Record<Exclude<LocalProblem, 'changing'>, { code: string; message: (names: string) => string; fix: string }> = {
  disk_full: {
    code: 'outbox_disk_full',
    message: (names) => `no space left to pack outbox entries (${names}); they are kept and retried`,
    fix: 'free space on the filesystem holding the state directory (df -h $STATE_DIR)',
  },
  unreadable: {
    code: 'outbox_unreadable',
    message: (names) => `the agent cannot read outbox entries (${names}); they are kept and retried`,
    fix: 'make each entry readable by the agent user: chown byteor-agent (or chmod it readable) before renaming it into the outbox',
  },
  io_error: {
    code: 'outbox_io_error',
    message: (names) => `reading or packing outbox entries failed (${names}); they are kept and retried`,
    fix: 'see the agent log (journalctl -u byteor-agent) for the error on each entry',
  },
};

/**
 * The outbox uploader (DESIGN.md "Outbox"; API.md §6). Each run scans outbox/<type>/, oldest first,
 * and for each entry: checks it locally, packs a directory into a deterministic .tar.gz, hashes,
 * uploads, then removes it (201, or 200 deduplicated) or moves it to .rejected/ with a reason.
 * Anything that says "not now" (429, 401, 403, network and server trouble) is thrown, so the
 * scheduler holds the whole outbox back: never sooner than Retry-After, 403 re-checked every 15 min.
 * One entry at a time; the scheduler never overlaps runs of a job.
 */
export class OutboxJob implements Job {
  readonly name = 'outbox';
  private started: Promise<void> | undefined;
  private watcher: OutboxWatch | undefined;
  private readonly preparer: Preparer;
  private readonly maxBytes: number;
  private readonly deferred = new Map<string, Deferral>();
  /** Whether this run sent a request (see Job.run's 'idle'). */
  private sent = false;

  constructor(private readonly options: OutboxJobOptions) {
    this.maxBytes = options.maxBytes ?? MAX_ARTIFACT_BYTES;
    this.preparer = new Preparer(options.layout, this.maxBytes);
  }

  intervalMs(): number {
    return this.options.intervalMs ?? OUTBOX_INTERVAL_MS;
  }

  startupSpreadMs(): number {
    // Soon after start, but spread: a fleet restarted together must not upload its backlog at once.
    return this.intervalMs();
  }

  async run(signal: AbortSignal): Promise<void | 'idle'> {
    await this.ensureStarted(signal);
    this.sent = false;
    const attempted = new Set<string>();
    let seen = new Set<string>();
    try {
      // Rescan after each pass: entries added while uploading go up in the same run.
      for (;;) {
        const entries = await scanOutbox(this.options.layout);
        seen = new Set(entries.map(entryKey));
        const now = this.options.now();
        const due = entries.filter((entry) => !attempted.has(entryKey(entry)) && !this.isDeferred(entry, now));
        if (due.length === 0) break;
        for (const entry of due) {
          if (signal.aborted) throw new AbortedError();
          attempted.add(entryKey(entry));
          await this.process(entry, signal);
        }
      }
    } finally {
      for (const key of this.deferred.keys()) if (!seen.has(key)) this.deferred.delete(key);
      this.publishProblems();
    }
    return this.sent ? undefined : 'idle';
  }

  /** Creates the directories, cleans what a kill left behind, starts watching. Once per process. */
  private ensureStarted(signal: AbortSignal): Promise<void> {
    this.started ??= (async () => {
      const { layout, logger } = this.options;
      await ensureOutboxDirs(layout);
      const cleaned = await cleanOnStart(layout, this.options.now());
      if (cleaned.removed > 0 || cleaned.rejectsFinished > 0) logger.info({ ...cleaned }, 'outbox: cleaned up after an interrupted run');
      if (this.options.watch !== false && !signal.aborted) {
        this.watcher = watchOutbox(layout, (type, name) => this.onWatchEvent(type, name), logger);
        signal.addEventListener('abort', () => this.watcher?.close(), { once: true });
      }
    })().catch((err: unknown) => {
      this.started = undefined;
      throw err;
    });
    return this.started;
  }

  private onWatchEvent(type: string, name: string | null): void {
    // Our own renames out of the directory (after an upload) fire too: only an arrival counts.
    if (name !== null && (!isVisibleName(name) || !existsSync(join(this.options.layout.outboxTypeDir(type), name)))) return;
    this.options.trigger(OUTBOX_TRIGGER_DELAY_MS);
  }

  private isDeferred(entry: OutboxEntry, now: number): boolean {
    const deferral = this.deferred.get(entryKey(entry));
    return deferral !== undefined && deferral.until > now;
  }

  private async stage(stage: OutboxStage, entry: OutboxEntry): Promise<void> {
    await this.options.hooks?.stage?.(stage, entry);
  }

  private async process(entry: OutboxEntry, signal: AbortSignal): Promise<void> {
    const refused = checkEntry(entry, this.maxBytes);
    if (refused !== undefined) return this.reject(entry, refused, {});
    const prepared = await this.prepare(entry, signal);
    if (prepared === undefined) return;
    const tooLarge = checkSize(prepared.size, prepared.packed, this.maxBytes);
    if (tooLarge !== undefined) return this.reject(entry, tooLarge, prepared);
    await this.stage('prepared', entry);
    await this.upload(entry, prepared, signal, false);
  }

  /** Packs and hashes; a local failure keeps the entry for later and returns undefined. */
  private async prepare(entry: OutboxEntry, signal: AbortSignal): Promise<Prepared | undefined> {
    try {
      const hooks = this.options.hooks;
      return await this.preparer.prepare(entry, { signal, ...(hooks?.stage ? { beforeWrite: () => this.stage('packing', entry) } : {}) });
    } catch (err) {
      if (err instanceof AbortedError || signal.aborted) throw err instanceof AbortedError ? err : new AbortedError();
      // Removed by its writer meanwhile: nothing to upload.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !existsSync(entry.path)) return undefined;
      const rejection = packRejection(err, this.maxBytes);
      if (rejection !== undefined) {
        await this.reject(entry, rejection, {});
        return undefined;
      }
      this.defer(entry, err);
      return undefined;
    }
  }

  private async upload(entry: OutboxEntry, prepared: Prepared, signal: AbortSignal, rehashed: boolean): Promise<void> {
    const { client, logger, layout } = this.options;
    let response;
    try {
      response = await sendArtifact(client, entry.type as ArtifactType, prepared, { signal });
      this.sent = true;
    } catch (err) {
      if (err instanceof ApiError) this.sent = true;
      if (!(err instanceof ApiError) && !(err instanceof AbortedError)) {
        // Opening the file failed before a byte was sent (gone, unreadable): a local problem.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !existsSync(entry.path)) return;
        this.defer(entry, err);
        return;
      }
      const action = onUploadFailure(err, rehashed);
      if (action.kind === 'rehash') {
        logger.warn({ type: entry.type, entry: entry.name, sha256: prepared.sha256, ...(err instanceof ApiError ? err.toLogFields() : {}) }, `outbox: the control plane saw other bytes for ${entry.type}/${entry.name}; hashing it again and retrying once`);
        await this.preparer.forget(entry);
        const again = await this.prepare(entry, signal);
        if (again === undefined) return;
        const tooLarge = checkSize(again.size, again.packed, this.maxBytes);
        if (tooLarge !== undefined) return this.reject(entry, tooLarge, again);
        return this.upload(entry, again, signal, true);
      }
      if (action.kind === 'reject') return this.reject(entry, action.rejection, prepared);
      if (action.refused) {
        this.options.health.setProblem('outbox_refused', {
          message: `the control plane refuses artifact uploads: ${errorMessage(err)}; entries are kept`,
          fix: 'check BYTEOR_API_BASE_URL (a proxy or gateway answering for the API?) and the agent version; `byteor-agent doctor` helps',
        });
      }
      throw err;
    }
    this.options.health.setProblem('outbox_refused', undefined);
    if (response.sha256 !== prepared.sha256) {
      logger.warn({ sent: prepared.sha256, answered: response.sha256, artifactId: response.artifact_id }, 'outbox: the control plane answered with another sha256 than was sent');
    }
    await this.stage('uploaded', entry);
    await this.preparer.forget(entry);
    await removeEntry(layout, entry, () => this.stage('removing', entry));
    this.deferred.delete(entryKey(entry));
    logger.info(
      { type: entry.type, entry: entry.name, artifactId: response.artifact_id, sha256: prepared.sha256, sizeBytes: prepared.size, deduplicated: response.deduplicated },
      `outbox: ${entry.type}/${entry.name} ${response.deduplicated ? 'was already uploaded (deduplicated)' : 'uploaded'} as ${response.artifact_id} (${formatBytes(prepared.size)})`,
    );
  }

  private async reject(entry: OutboxEntry, rejection: Rejection, facts: { sha256?: string; size?: number }): Promise<void> {
    const { layout, logger, now } = this.options;
    await this.preparer.forget(entry);
    const name = await rejectEntry(layout, entry, rejection, { sha256: facts.sha256, size: facts.size }, now(), () => this.stage('rejecting', entry));
    this.deferred.delete(entryKey(entry));
    logger.error(
      { type: entry.type, entry: entry.name, code: rejection.code, status: rejection.status, requestId: rejection.requestId, rejectedAs: name },
      `outbox: ${entry.type === '' ? '' : `${entry.type}/`}${entry.name} rejected: ${rejection.reason}. Kept in ${join(layout.rejectedDir, name)}`,
    );
  }

  private defer(entry: OutboxEntry, err: unknown): void {
    const key = entryKey(entry);
    const previous = this.deferred.get(key);
    const failures = (previous?.failures ?? 0) + 1;
    const problem = localProblemOf(err);
    const delay = deferDelayMs(failures);
    this.deferred.set(key, { until: this.options.now() + delay, failures, problem, message: errorMessage(err), name: key });
    // The first failure and every tenth at warn; the rest at debug: no flood while a disk stays full.
    const level = failures === 1 || failures % 10 === 0 ? 'warn' : 'debug';
    this.options.logger[level](
      { type: entry.type, entry: entry.name, problem, failures, retryInMs: delay, err },
      `outbox: ${key} kept for later (${errorMessage(err)}); retrying in ${Math.ceil(delay / 1000)} s`,
    );
  }

  private publishProblems(): void {
    const { health } = this.options;
    for (const [problem, spec] of Object.entries(PROBLEMS) as [Exclude<LocalProblem, 'changing'>, (typeof PROBLEMS)[keyof typeof PROBLEMS]][]) {
      const names = [...this.deferred.values()].filter((d) => d.problem === problem).map((d) => d.name);
      health.setProblem(spec.code, names.length === 0 ? undefined : { message: spec.message(names.slice(0, 5).join(', ') + (names.length > 5 ? ', …' : '')), fix: spec.fix });
    }
  }
}
