import type { Logger } from '../log.js';
import { loadJsonFile, saveJsonFile } from './json-file.js';

/** A deployment the agent has made (or is making) current. */
export interface ActiveDeployment {
  deployment_id: string;
  bundle_sha256: string;
  state: 'active' | 'rolled_back';
  activated_at: string;
}

/** The last deployment the control plane named, as fetched (kept verbatim: its signature covers it). */
export interface DeploymentTarget {
  deployment: Record<string, unknown> & { deployment_id: string };
  seen_at: string;
}

export interface FailedDeployment {
  deployment_id: string;
  bundle_sha256: string;
  reason: string;
  message: string;
  failed_at: string;
  /** Unix ms before which the same target is not tried again (a failure is not retried in a loop). */
  retry_after_ms: number;
  /** Consecutive failed attempts at this same deployment (the backoff grows with it); absent in older files. */
  attempts?: number;
  /** For unknown_key: the kid that was missing, so the deployment is retried once the key arrives. */
  kid?: string;
}

/**
 * The deployment being worked on, persisted before each step so a restart resumes it instead of
 * starting over or reporting twice.
 */
export interface DeploymentWork {
  deployment_id: string;
  bundle_sha256: string;
  /** 'download' when the bundle had to be fetched; 'cached' when it was on disk already (a rollback). */
  source: 'download' | 'cached';
  /** Progress reports already queued for this work. */
  reported: string[];
  /**
   * Written just before `current` is swapped: all checks have passed, so a restart finishes the
   * activation (the swap happened) or redoes the swap.
   */
  activating: { outcome: 'active' | 'rolled_back'; previous: ActiveDeployment | null } | null;
  started_at: string;
}

export interface PendingReport {
  deployment_id: string;
  report: Record<string, unknown>;
}

/** state.json: everything that must survive a restart. */
export interface AgentState {
  version: 1;
  /** interval_seconds: the server's last advice, so a restart spreads over the right period. */
  heartbeat: { sequence: number; last_success_at: string | null; interval_seconds: number | null };
  etags: { deployment: string | null; signing_keys: string | null };
  deployment: {
    target: DeploymentTarget | null;
    current: ActiveDeployment | null;
    previous: ActiveDeployment | null;
    failed: FailedDeployment | null;
    /** Absent in files written before the bundle pipeline; normalize() fills null. */
    work: DeploymentWork | null;
  };
  /** Status reports not yet accepted by the control plane; sent in order, oldest first. */
  pending_reports: PendingReport[];
}

export function emptyState(): AgentState {
  return {
    version: 1,
    heartbeat: { sequence: 0, last_success_at: null, interval_seconds: null },
    etags: { deployment: null, signing_keys: null },
    deployment: { target: null, current: null, previous: null, failed: null, work: null },
    pending_reports: [],
  };
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

export function stateProblem(value: unknown): string | undefined {
  if (!isObj(value)) return 'not a JSON object';
  if (value.version !== 1) return `unsupported version ${JSON.stringify(value.version)}`;
  const hb = value.heartbeat;
  if (!isObj(hb) || !Number.isSafeInteger(hb.sequence) || (hb.sequence as number) < 0) return 'heartbeat.sequence is not a non-negative integer';
  if (!isObj(value.etags)) return 'etags is not an object';
  if (!isObj(value.deployment)) return 'deployment is not an object';
  if (!Array.isArray(value.pending_reports)) return 'pending_reports is not a list';
  return undefined;
}

/** Fills fields added after a file was written, so older state files load. */
function normalize(value: AgentState): AgentState {
  const base = emptyState();
  return {
    ...base,
    ...value,
    heartbeat: { ...base.heartbeat, ...value.heartbeat },
    etags: { ...base.etags, ...value.etags },
    deployment: { ...base.deployment, ...value.deployment },
  };
}

/**
 * The in-memory state plus its file. Saves are serialized and coalesced: concurrent jobs can call
 * save() freely, each call resolves once a write that includes its changes is on disk.
 */
export class StateStore {
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;
  private queued: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    public state: AgentState,
  ) {}

  static async open(path: string, logger: Logger, now: () => number = Date.now): Promise<StateStore> {
    const result = await loadJsonFile<AgentState>(path, stateProblem, now);
    if (result.kind === 'corrupt') {
      logger.warn(
        { path, movedTo: result.movedTo, problem: result.problem },
        `state file was corrupt (${result.problem}); set aside${result.movedTo === undefined ? '' : ` as ${result.movedTo}`} and starting with a clean state`,
      );
    }
    return new StateStore(path, result.kind === 'loaded' ? normalize(result.value) : emptyState());
  }

  update(mutate: (state: AgentState) => void): Promise<void> {
    mutate(this.state);
    return this.save();
  }

  save(): Promise<void> {
    this.dirty = true;
    if (this.queued !== undefined) return this.queued;
    const run = this.writing.then(async () => {
      this.queued = undefined;
      if (!this.dirty) return;
      this.dirty = false;
      await saveJsonFile(this.path, this.state);
    });
    this.queued = run;
    // The chain must survive a failed write so later saves still happen.
    this.writing = run.catch(() => undefined);
    return run;
  }
}
