import { rm } from 'node:fs/promises';
import type { AgentClient } from '../../api/client.js';
import type { Deployment, DeploymentState, Posture } from '../../api/types.js';
import { ArchiveError } from '../../archive/errors.js';
import { extractArchive } from '../../archive/extract.js';
import { archiveLimits, type ArchiveLimits } from '../../archive/limits.js';
import type { TrustedKey } from '../../crypto/keyset.js';
import type { Logger } from '../../log.js';
import type { ActiveDeployment, AgentState, DeploymentWork, FailedDeployment, StateStore } from '../../state/agent-state.js';
import type { StateLayout } from '../../state/layout.js';
import type { Health } from '../health.js';
import type { DeploymentHandler } from '../jobs/deployment.js';
import { downloadPath, isDirectory, prune, readCurrent, swapCurrent, type SwapStep } from './activate.js';
import { downloadBundle, type DownloadSink } from './download.js';
import { DeployFailure, failedRetryDelayMs, failureFix, fromArchiveError } from './failure.js';
import { enqueueReport, statusReport } from './reports.js';
import { checkBundleSpec, verifyDeployment, type Verified } from './verify.js';

export const DEPLOYMENT_FAILED_PROBLEM = 'deployment_failed';

/** The points between the steps of an activation, where a crash is survivable (tests stall there). */
export type DeployStep = 'downloaded' | 'bundle-committed' | 'journal-written' | SwapStep | 'state-committed' | 'pruned';

export interface DeployDeps {
  client: AgentClient;
  store: StateStore;
  keys: { keys(): TrustedKey[]; kids(): string[] };
  /** One rate-limited refresh of the key set for an unknown kid. */
  refreshKeys: (kid: string, signal: AbortSignal) => Promise<boolean>;
  health: Pick<Health, 'setProblem'>;
  layout: StateLayout;
  logger: Logger;
  now: () => number;
  random: () => number;
  identity: { environmentId: string | undefined; posture: Posture | undefined };
  /** Asks for the status-report job to run now. */
  triggerReports: () => void;
}

export interface DeployOptions {
  limits?: Partial<ArchiveLimits>;
  /** fsync extracted bundles before they become visible (default true). */
  durable?: boolean;
  freeBytes?: (dir: string) => Promise<number>;
  openWrite?: (path: string, flags: 'w' | 'a') => Promise<DownloadSink>;
  /** Runs after each activation step. */
  onStep?: (step: DeployStep) => Promise<void>;
}

/**
 * The bundle pipeline (API.md §3–§5, DESIGN.md "Bundles"): verify the deployment, download the
 * bundle with resume, check size and digest, extract it safely, check the approved spec, swap
 * `current` atomically, keep the previous bundle, report each state. Every step is persisted
 * first (state.json `deployment.work`), so a crash at any instant leaves `current` usable and a
 * restart finishes or redoes the work. A failed deployment is reported once and retried only when
 * the target changes, its missing key arrives, or after a long backoff.
 */
export class BundleDeploymentHandler implements DeploymentHandler {
  private recovered = false;
  private readonly limits: ArchiveLimits;

  constructor(
    private readonly deps: DeployDeps,
    private readonly options: DeployOptions = {},
  ) {
    this.limits = archiveLimits(options.limits);
  }

  private get state(): AgentState {
    return this.deps.store.state;
  }

  private iso(): string {
    return new Date(this.deps.now()).toISOString();
  }

  async handle(deployment: Deployment, signal: AbortSignal): Promise<void> {
    await this.recover();
    await this.deps.store.update((s) => {
      s.deployment.target = { deployment, seen_at: this.iso() };
    });
    await this.process(deployment, signal);
  }

  async reconcile(signal: AbortSignal): Promise<void> {
    await this.recover();
    const target = this.state.deployment.target;
    if (target !== null) await this.process(target.deployment as Deployment, signal);
  }

  async cleared(): Promise<void> {
    await this.recover();
    await this.deps.store.update((s) => {
      s.deployment.target = null;
      s.deployment.failed = null;
      s.deployment.work = null;
    });
    this.deps.health.setProblem(DEPLOYMENT_FAILED_PROBLEM, undefined);
    const { current, previous } = this.state.deployment;
    await this.prune([current?.bundle_sha256, previous?.bundle_sha256], []);
  }

  /** Brings `deployment` to active, unless it is already, or failed and not yet due for a retry. */
  private async process(deployment: Deployment, signal: AbortSignal): Promise<void> {
    const { deployment_id: id } = deployment;
    const sha = deployment.bundle.sha256;
    const { current, failed } = this.state.deployment;
    if (current?.deployment_id === id && current.bundle_sha256 === sha && (await this.inPlace(sha))) return;
    if (failed !== null && failed.deployment_id === id && failed.bundle_sha256 === sha && !this.retryDue(failed)) return;

    try {
      const verified = await verifyDeployment(deployment, { ...this.deps, keys: () => this.deps.keys.keys(), limits: this.limits }, signal);
      const work = await this.beginWork(deployment);
      await this.ensureBundle(deployment, work, verified, signal);
      await this.activate(work);
    } catch (err) {
      if (!(err instanceof DeployFailure)) throw err;
      await this.fail(deployment, err);
    }
  }

  /** `current` names the bundle and the bundle is on disk (someone may have deleted it). */
  private async inPlace(sha: string): Promise<boolean> {
    return (await readCurrent(this.deps.layout)) === sha && (await isDirectory(this.deps.layout.bundleDir(sha)));
  }

  private retryDue(failed: FailedDeployment): boolean {
    if (this.deps.now() >= failed.retry_after_ms) return true;
    // A deployment signed by a key that was missing is worth trying again as soon as the key is trusted.
    return failed.reason === 'unknown_key' && failed.kid !== undefined && this.deps.keys.kids().includes(failed.kid);
  }

  /** The persisted work record for `deployment`: resumed when it is the one already under way. */
  private async beginWork(deployment: Deployment): Promise<DeploymentWork> {
    const sha = deployment.bundle.sha256;
    const existing = this.state.deployment.work;
    if (existing?.deployment_id === deployment.deployment_id && existing.bundle_sha256 === sha) return existing;
    const cached = await isDirectory(this.deps.layout.bundleDir(sha));
    const work: DeploymentWork = { deployment_id: deployment.deployment_id, bundle_sha256: sha, source: cached ? 'cached' : 'download', reported: [], activating: null, started_at: this.iso() };
    await this.deps.store.update((s) => {
      s.deployment.work = work;
      // A failure of a deployment that is no longer the target says nothing about this one.
      if (s.deployment.failed !== null && s.deployment.failed.deployment_id !== work.deployment_id) s.deployment.failed = null;
    });
    if (this.state.deployment.failed === null) this.deps.health.setProblem(DEPLOYMENT_FAILED_PROBLEM, undefined);
    this.deps.logger.info(
      { deploymentId: work.deployment_id, bundleSha256: sha, sizeBytes: deployment.bundle.size_bytes, source: work.source },
      cached ? `deployment ${work.deployment_id}: bundle ${sha.slice(0, 12)} is on disk already, activating it without a download` : `deployment ${work.deployment_id}: fetching bundle ${sha.slice(0, 12)} (${deployment.bundle.size_bytes} bytes)`,
    );
    return this.state.deployment.work ?? work;
  }

  /** Gets the verified, extracted bundle into bundles/<sha256>/ unless it is there already. */
  private async ensureBundle(deployment: Deployment, work: DeploymentWork, verified: Verified, signal: AbortSignal): Promise<void> {
    const { layout } = this.deps;
    const sha = work.bundle_sha256;
    const dir = layout.bundleDir(sha);
    if (await isDirectory(dir)) {
      // Extracted and checked earlier, perhaps for another deployment with another approval.
      await checkBundleSpec(dir, verified.approval);
      return;
    }
    if (work.source === 'cached') {
      // It was on disk when the work began and has gone since: fetch it after all.
      await this.deps.store.update((s) => {
        if (s.deployment.work !== null) s.deployment.work.source = 'download';
      });
    }
    await this.reportOnce(work, 'downloading');
    const partial = downloadPath(layout, sha);
    const { resumedFrom, fetched } = await downloadBundle({
      client: this.deps.client,
      url: deployment.bundle.url,
      sha256: sha,
      size: deployment.bundle.size_bytes,
      path: partial,
      signal,
      ...(this.options.freeBytes === undefined ? {} : { freeBytes: this.options.freeBytes }),
      ...(this.options.openWrite === undefined ? {} : { openWrite: this.options.openWrite }),
    });
    this.deps.logger.info({ deploymentId: work.deployment_id, resumedFrom, fetched }, `deployment ${work.deployment_id}: bundle downloaded${resumedFrom > 0 ? ` (resumed at byte ${resumedFrom})` : ''}, digest verified`);
    await this.step('downloaded');
    await this.reportOnce(work, 'verifying');
    try {
      await extractArchive(partial, dir, {
        limits: this.limits,
        signal,
        durable: this.options.durable !== false,
        beforeCommit: (staging) => checkBundleSpec(staging, verified.approval),
      });
    } catch (err) {
      throw err instanceof ArchiveError ? fromArchiveError(err) : err;
    }
    await rm(partial, { force: true });
    await this.step('bundle-committed');
  }

  /** Queues a progress report once per work, persisted with the record that it was queued. */
  private async reportOnce(work: DeploymentWork, state: DeploymentState): Promise<void> {
    if (work.reported.includes(state)) return;
    await this.deps.store.update((s) => {
      enqueueReport(s, work.deployment_id, statusReport(state, work.bundle_sha256, this.deps.now()));
      s.deployment.work?.reported.push(state);
    });
    this.deps.triggerReports();
  }

  /**
   * Writes the activation journal (once: a retry reuses it, so a rollback stays a rollback), swaps
   * `current` (a failing swap is activation_failed and leaves the old link), then commits.
   */
  private async activate(work: DeploymentWork): Promise<void> {
    const { layout, store } = this.deps;
    const sha = work.bundle_sha256;
    if (work.activating === null) {
      const linked = await readCurrent(layout);
      const { current, previous } = this.state.deployment;
      const outcome = work.source === 'cached' && linked !== sha ? 'rolled_back' : 'active';
      // Re-deploying the bundle that is current keeps the older previous: it is the one to fall back to.
      const keepAsPrevious = current !== null && current.bundle_sha256 !== sha ? current : previous;
      await store.update((s) => {
        if (s.deployment.work !== null) s.deployment.work.activating = { outcome, previous: keepAsPrevious };
      });
      await this.step('journal-written');
    }
    try {
      if ((await readCurrent(layout)) !== sha) await swapCurrent(layout, sha, (name) => this.step(name));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Only a failed system call is the swap failing; whatever else (a shutdown) keeps its meaning.
      if (typeof code !== 'string' || !('syscall' in (err as object))) throw err;
      // The rename may have happened before a later step failed: then the swap did succeed.
      if ((await readCurrent(layout)) !== sha) {
        throw new DeployFailure(code === 'ENOSPC' || code === 'EDQUOT' ? 'disk_full' : 'activation_failed', `pointing ${layout.currentLink} at the bundle failed: ${(err as Error).message}`, {}, { cause: err });
      }
    }
    await this.commitActivation(this.state.deployment.work ?? work);
  }

  /** Records the activation (current, previous, the final report) in one state write, then prunes. */
  private async commitActivation(work: DeploymentWork): Promise<void> {
    const sha = work.bundle_sha256;
    const journal = work.activating ?? { outcome: 'active' as const, previous: this.state.deployment.previous };
    const active: ActiveDeployment = { deployment_id: work.deployment_id, bundle_sha256: sha, state: journal.outcome, activated_at: this.iso() };
    await this.deps.store.update((s) => {
      s.deployment.previous = journal.previous;
      s.deployment.current = active;
      s.deployment.work = null;
      s.deployment.failed = null;
      enqueueReport(s, work.deployment_id, statusReport(journal.outcome, sha, this.deps.now()));
    });
    this.deps.health.setProblem(DEPLOYMENT_FAILED_PROBLEM, undefined);
    this.deps.triggerReports();
    this.deps.logger.info(
      { deploymentId: work.deployment_id, bundleSha256: sha, state: journal.outcome, previous: journal.previous?.deployment_id ?? null },
      journal.outcome === 'rolled_back' ? `deployment ${work.deployment_id} active: rolled back to bundle ${sha.slice(0, 12)}` : `deployment ${work.deployment_id} active (bundle ${sha.slice(0, 12)})`,
    );
    await this.step('state-committed');
    await this.prune([sha, journal.previous?.bundle_sha256], []);
    await this.step('pruned');
  }

  private async fail(deployment: Deployment, failure: DeployFailure): Promise<void> {
    const { deployment_id: id } = deployment;
    const sha = deployment.bundle.sha256;
    const before = this.state.deployment.failed;
    const attempts = before !== null && before.deployment_id === id && before.bundle_sha256 === sha ? (before.attempts ?? 1) + 1 : 1;
    const now = this.deps.now();
    const failed: FailedDeployment = {
      deployment_id: id,
      bundle_sha256: sha,
      reason: failure.reason,
      message: failure.message,
      failed_at: this.iso(),
      retry_after_ms: now + failedRetryDelayMs(attempts, this.deps.random()),
      attempts,
      ...(failure.details.kid === undefined ? {} : { kid: failure.details.kid }),
    };
    // A bundle that failed any check is never used: its partial download goes too.
    await rm(downloadPath(this.deps.layout, sha), { force: true }).catch(() => undefined);
    await this.deps.store.update((s) => {
      s.deployment.failed = failed;
      s.deployment.work = null;
      enqueueReport(s, id, statusReport('failed', sha, now, { reason: failure.reason, message: failure.message }));
    });
    this.deps.triggerReports();
    this.deps.health.setProblem(DEPLOYMENT_FAILED_PROBLEM, { message: `deployment ${id} failed (${failure.reason}): ${failure.message}`, fix: failureFix(failure.reason, this.deps.layout.root) });
    this.deps.logger.error(
      { deploymentId: id, bundleSha256: sha, reason: failure.reason, attempts, retryAt: new Date(failed.retry_after_ms).toISOString() },
      `deployment ${id} failed (${failure.reason}): ${failure.message}; the current bundle stays active`,
    );
  }

  /**
   * Once per process, before any work: finishes an activation a crash interrupted (its checks had
   * all passed), puts `current` back in line with state.json, sweeps leftovers (staging
   * directories, temporary links, stale downloads) and re-raises a persisted failure as a problem.
   */
  private async recover(): Promise<void> {
    if (this.recovered) return;
    const { layout, logger, store } = this.deps;
    const { work, current, failed } = this.state.deployment;
    const linked = await readCurrent(layout);
    if (work?.activating != null) {
      if (await isDirectory(layout.bundleDir(work.bundle_sha256))) {
        logger.info({ deploymentId: work.deployment_id }, `finishing the activation of deployment ${work.deployment_id} that a restart interrupted`);
        if (linked !== work.bundle_sha256) await swapCurrent(layout, work.bundle_sha256);
        await this.commitActivation(work);
      } else {
        await store.update((s) => {
          s.deployment.work = null;
          s.etags.deployment = null;
        });
      }
    } else if (current !== null && !(await this.inPlace(current.bundle_sha256))) {
      if (await isDirectory(layout.bundleDir(current.bundle_sha256))) {
        logger.warn({ linked: linked ?? null, expected: current.bundle_sha256 }, `${layout.currentLink} did not point at the active bundle; repointing it`);
        await swapCurrent(layout, current.bundle_sha256);
      } else {
        // The active bundle is gone from disk: forget it and fetch the deployment again.
        logger.error({ deploymentId: current.deployment_id, bundleSha256: current.bundle_sha256 }, `the active bundle ${current.bundle_sha256} is missing from ${layout.bundlesDir}; fetching the deployment again`);
        await store.update((s) => {
          s.deployment.current = null;
          s.etags.deployment = null;
        });
      }
    }
    if (failed !== null) {
      this.deps.health.setProblem(DEPLOYMENT_FAILED_PROBLEM, { message: `deployment ${failed.deployment_id} failed (${failed.reason}): ${failed.message}`, fix: failureFix(failed.reason, layout.root) });
    }
    const d = this.state.deployment;
    const targetSha = (d.target?.deployment.bundle as { sha256?: unknown } | undefined)?.sha256;
    await this.prune([d.current?.bundle_sha256, d.previous?.bundle_sha256, d.work?.bundle_sha256], [d.work?.bundle_sha256, typeof targetSha === 'string' ? targetSha : undefined]);
    this.recovered = true;
  }

  /** Cleanup never fails a deployment: what is left is swept at the next activation or start. */
  private async prune(keepBundles: (string | undefined)[], keepDownloads: (string | undefined)[]): Promise<void> {
    try {
      const removed = await prune(this.deps.layout, keepBundles, keepDownloads);
      if (removed.bundles.length + removed.downloads.length > 0) this.deps.logger.debug(removed, 'removed bundles and downloads no deployment needs');
    } catch (err) {
      this.deps.logger.warn({ err }, 'removing old bundles failed; retrying at the next activation');
    }
  }

  private async step(name: DeployStep): Promise<void> {
    await this.options.onStep?.(name);
  }
}
