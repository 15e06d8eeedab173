import type { AgentClient } from '../../api/client.js';
import { PermanentError } from '../../api/errors.js';
import type { DeploymentState, DeploymentStatusReport, FailureReason } from '../../api/types.js';
import type { Logger } from '../../log.js';
import type { AgentState, PendingReport, StateStore } from '../../state/agent-state.js';
import type { Job } from '../scheduler.js';

export const REPORTS_JOB = 'deployment-reports';
/** Only a safety net: every new report triggers the job at once. An empty queue costs no request. */
export const REPORTS_INTERVAL_MS = 30_000;
/** Reports kept while the control plane is unreachable; progress reports are dropped first. */
export const MAX_PENDING_REPORTS = 100;

const PROGRESS: readonly string[] = ['downloading', 'verifying'];

export function statusReport(state: DeploymentState, bundleSha256: string, at: number, failure?: { reason: FailureReason; message: string }): DeploymentStatusReport {
  return { state, bundle_sha256: bundleSha256, reported_at: new Date(at).toISOString(), reason: failure?.reason ?? null, message: failure?.message ?? null };
}

/**
 * Queues a report inside a state mutation, so it is persisted atomically with what it reports
 * (a crash can neither lose an `active` nor send it twice). Bounded: a long outage drops the
 * oldest progress reports first, since a final state supersedes them.
 */
export function enqueueReport(state: AgentState, deploymentId: string, report: DeploymentStatusReport): void {
  state.pending_reports.push({ deployment_id: deploymentId, report: { ...report } });
  while (state.pending_reports.length > MAX_PENDING_REPORTS) {
    const progress = state.pending_reports.findIndex((p) => PROGRESS.includes(String(p.report.state)));
    state.pending_reports.splice(progress === -1 ? 0 : progress, 1);
  }
}

/**
 * Sends pending deployment status reports (API.md §4) in order, oldest first, each removed only
 * once the control plane accepted it. A transient failure stops the round and the scheduler retries
 * with backoff; a report the control plane refuses for good (400, 404) is dropped with a warning,
 * since resending it unchanged cannot succeed and would block every later report.
 */
export class DeploymentReportsJob implements Job {
  readonly name = REPORTS_JOB;

  constructor(
    private readonly client: AgentClient,
    private readonly store: StateStore,
    private readonly logger: Logger,
    private readonly interval: number = REPORTS_INTERVAL_MS,
  ) {}

  intervalMs(): number {
    return this.interval;
  }

  startupSpreadMs(): number {
    // Reports left over from before a restart are overdue already.
    return 1_000;
  }

  async run(signal: AbortSignal): Promise<void | 'idle'> {
    // Nothing queued: no request, so nothing learnt about the key (the scheduler's 'idle').
    if (this.store.state.pending_reports.length === 0) return 'idle';
    for (let next = this.store.state.pending_reports[0]; next !== undefined; next = this.store.state.pending_reports[0]) {
      try {
        await this.client.reportDeploymentStatus(next.deployment_id, next.report as unknown as DeploymentStatusReport, signal);
      } catch (err) {
        if (!(err instanceof PermanentError)) throw err;
        this.logger.warn({ deploymentId: next.deployment_id, state: next.report.state, ...err.toLogFields() }, `the control plane refused a ${String(next.report.state)} report for ${next.deployment_id}; dropping it`);
      }
      await this.remove(next);
    }
  }

  private async remove(sent: PendingReport): Promise<void> {
    await this.store.update((s) => {
      const index = s.pending_reports.indexOf(sent);
      if (index !== -1) s.pending_reports.splice(index, 1);
    });
  }
}
