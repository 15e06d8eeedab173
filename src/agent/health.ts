import { ApiError } from '../api/errors.js';
import type { Problem } from '../api/types.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { AgentHealthState } from '../state/status-file.js';
import type { Disposition } from './backoff.js';

/** A problem as `status` shows it: the heartbeat's {code, message} plus what to do about it. */
export interface ProblemWithFix extends Problem {
  fix: string;
  since: string;
}

export interface JobHealth {
  last_run_at: string | null;
  last_success_at: string | null;
  last_error: string | null;
  consecutive_failures: number;
  next_run_at: string | null;
}

/** Heartbeats failing this many times in a row make the agent `degraded` in status. */
const UNREACHABLE_AFTER_FAILURES = 3;


/** Scopes each job needs (API.md), to name what is missing even when the server does not. */
export const JOB_SCOPES: Record<string, string> = {
  heartbeat: 'agent:heartbeat',
  deployment: 'agent:deployment_read',
  'signing-keys': 'agent:signing_keys_read',
  outbox: 'agent:artifact_upload',
};

/**
 * What the agent knows about its own health. Auth state changes are logged once per change
 * (never per request), so ten minutes of 401s is one error line and one recovery line.
 */
export class Health {
  private unauthorizedSince: string | undefined;
  private readonly missingScopes = new Map<string, { since: string; jobs: Set<string> }>();
  private readonly extra = new Map<string, ProblemWithFix>();
  private readonly jobs = new Map<string, JobHealth>();
  private stopped = false;

  constructor(
    private readonly logger: Logger,
    private readonly identity: { agentId: string; envFile: string; keyHint: string },
    private readonly now: () => number,
  ) {}

  private iso(): string {
    return new Date(this.now()).toISOString();
  }

  /** Records how a job run ended and logs auth transitions. */
  recordRun(job: string, disposition: Disposition, error: unknown, nextRunAt: number, failures: number, idle = false): void {
    const at = this.iso();
    const entry = this.jobs.get(job) ?? { last_run_at: null, last_success_at: null, last_error: null, consecutive_failures: 0, next_run_at: null };
    entry.last_run_at = at;
    entry.consecutive_failures = failures;
    entry.next_run_at = Number.isFinite(nextRunAt) ? new Date(nextRunAt).toISOString() : null;
    if (disposition.kind === 'success') {
      entry.last_success_at = at;
      entry.last_error = null;
      // A run that sent nothing (an empty outbox) cannot tell whether the key works again; it does
      // end a job's scope_missing, since nothing of that job is waiting any more.
      if (!idle) this.markAuthorized();
      this.markScopeWorking(job);
    } else if (disposition.kind !== 'stopped') {
      entry.last_error = errorMessage(error);
    }
    if (disposition.kind === 'unauthorized') this.markUnauthorized(error);
    if (disposition.kind === 'forbidden') {
      // A 403 proves the key itself is accepted.
      this.markAuthorized();
      this.markScopeMissing(job, disposition.scope ?? JOB_SCOPES[job] ?? 'unknown scope', error);
    }
    this.jobs.set(job, entry);
  }

  private markUnauthorized(error: unknown): void {
    if (this.unauthorizedSince !== undefined) return;
    this.unauthorizedSince = this.iso();
    const requestId = error instanceof ApiError ? error.requestId : undefined;
    this.logger.error(
      { agentId: this.identity.agentId, envFile: this.identity.envFile, requestId, status: 401 },
      `the control plane rejects the runtime key (${this.identity.keyHint}) of agent ${this.identity.agentId} (401: revoked, expired or not this agent's). ` +
        `Credentials are left untouched and the agent re-checks every 5 minutes; to fix, re-enroll: BYTEOR_ENROLLMENT_TOKEN=… byteor-agent enroll --force --config ${this.identity.envFile}`,
    );
  }

  private markAuthorized(): void {
    if (this.unauthorizedSince === undefined) return;
    this.logger.info({ agentId: this.identity.agentId, since: this.unauthorizedSince }, 'the runtime key is accepted again; resuming normal operation');
    this.unauthorizedSince = undefined;
  }

  private markScopeMissing(job: string, scope: string, error: unknown): void {
    const existing = this.missingScopes.get(scope);
    if (existing !== undefined) {
      existing.jobs.add(job);
      return;
    }
    this.missingScopes.set(scope, { since: this.iso(), jobs: new Set([job]) });
    const requestId = error instanceof ApiError ? error.requestId : undefined;
    this.logger.error(
      { agentId: this.identity.agentId, scope, job, requestId, status: 403 },
      `the runtime key lacks ${scope}: ${job} is paused (its work is kept) and re-checked every 15 minutes. Grant ${scope} to agent ${this.identity.agentId} in the ByteOr console, or re-enroll with a token that grants it`,
    );
  }

  private markScopeWorking(job: string): void {
    for (const [scope, entry] of this.missingScopes) {
      if (!entry.jobs.delete(job)) continue;
      if (entry.jobs.size === 0) {
        this.missingScopes.delete(scope);
        this.logger.info({ scope, job }, `${scope} works again; ${job} resumed`);
      }
    }
  }

  /** Problems raised by other parts (a failed deployment, rejected artifacts, low disk). */
  setProblem(code: string, problem: { message: string; fix: string } | undefined): void {
    if (problem === undefined) {
      this.extra.delete(code);
      return;
    }
    const existing = this.extra.get(code);
    this.extra.set(code, { code, message: problem.message, fix: problem.fix, since: existing?.since ?? this.iso() });
  }

  markStopped(): void {
    this.stopped = true;
  }

  get isUnauthorized(): boolean {
    return this.unauthorizedSince !== undefined;
  }

  isScopeMissing(scope: string): boolean {
    return this.missingScopes.has(scope);
  }

  problems(): ProblemWithFix[] {
    const out: ProblemWithFix[] = [];
    if (this.unauthorizedSince !== undefined) {
      out.push({
        code: 'unauthorized',
        message: `the control plane rejects the runtime key of agent ${this.identity.agentId} (401)`,
        fix: `re-enroll: BYTEOR_ENROLLMENT_TOKEN=… byteor-agent enroll --force --config ${this.identity.envFile}`,
        since: this.unauthorizedSince,
      });
    }
    for (const [scope, entry] of this.missingScopes) {
      out.push({
        code: 'scope_missing',
        message: `runtime key lacks ${scope}`,
        fix: `grant ${scope} to agent ${this.identity.agentId} in the ByteOr console; ${[...entry.jobs].join(', ')} resumes by itself within 15 minutes`,
        since: entry.since,
      });
    }
    const heartbeat = this.jobs.get('heartbeat');
    if (heartbeat !== undefined && heartbeat.consecutive_failures >= UNREACHABLE_AFTER_FAILURES && this.unauthorizedSince === undefined) {
      out.push({
        code: 'control_plane_unreachable',
        message: `the last ${heartbeat.consecutive_failures} heartbeats failed: ${heartbeat.last_error ?? 'unknown error'}`,
        fix: 'check network, DNS, proxy (HTTPS_PROXY/NO_PROXY) and firewall towards BYTEOR_API_BASE_URL; `byteor-agent doctor` tests each step',
        since: heartbeat.last_success_at ?? heartbeat.last_run_at ?? this.iso(),
      });
    }
    out.push(...this.extra.values());
    return out;
  }

  /** The heartbeat's problem list: what the control plane should see (it already knows about 401s). */
  heartbeatProblems(): Problem[] {
    return this.problems()
      .filter((p) => p.code !== 'unauthorized' && p.code !== 'control_plane_unreachable')
      .map(({ code, message }) => ({ code, message }));
  }

  state(heartbeatEverSucceeded: boolean): AgentHealthState {
    if (this.stopped) return 'stopped';
    if (this.unauthorizedSince !== undefined) return 'unauthorized';
    if (!heartbeatEverSucceeded && this.problems().length === 0) return 'starting';
    return this.problems().length > 0 ? 'degraded' : 'healthy';
  }

  jobHealth(): Record<string, JobHealth> {
    return Object.fromEntries(this.jobs);
  }
}
