import { createHash } from 'node:crypto';
import { AgentClient } from '../api/client.js';
import type { FetchLike } from '../api/transport.js';
import type { EnvironmentPosture } from '../config/config.js';
import { hostMetrics } from '../host/metrics.js';
import type { Logger } from '../log.js';
import { StateStore } from '../state/agent-state.js';
import type { StateLayout } from '../state/layout.js';
import { writeStatusFile, type StatusDocument } from '../state/status-file.js';
import { AGENT_VERSION } from '../version.js';
import { systemClock, type Clock, type RandomSource } from './clock.js';
import { Health } from './health.js';
import { createBundleDeploymentHandler, DeploymentReportsJob } from './deploy/index.js';
import { DeploymentJob, type DeploymentHandler, DEPLOYMENT_INTERVAL_MS } from './jobs/deployment.js';
import { DEFAULT_HEARTBEAT_INTERVAL_S, HeartbeatJob, type OutboxCounts } from './jobs/heartbeat.js';
import { SigningKeysJob, SIGNING_KEYS_INTERVAL_MS } from './jobs/signing-keys.js';
import { KeyStore } from './key-store.js';
import { outboxCounts, rejectedEntries } from './outbox-counts.js';
import { OutboxJob, type OutboxJobOptions } from './outbox/job.js';
import { Scheduler, type Job, type RunReport } from './scheduler.js';

export interface RuntimeIdentityInfo {
  apiBaseUrl: URL;
  agentId: string;
  apiKey: string;
  envFile: string;
  allowInsecureHttp: boolean;
  environmentId: string | undefined;
  environmentPosture: EnvironmentPosture | undefined;
}

/** Shorter periods for tests, the demo and the fleet bench; production uses the defaults. */
export interface RuntimeIntervals {
  heartbeatMs?: number;
  deploymentMs?: number;
  signingKeysMs?: number;
  outboxMs?: number;
}

/** What other parts plug into the runtime (the bundle pipeline, the outbox). */
export interface RuntimeContext {
  identity: RuntimeIdentityInfo;
  layout: StateLayout;
  logger: Logger;
  clock: Clock;
  random: RandomSource;
  client: AgentClient;
  store: StateStore;
  keys: KeyStore;
  health: Health;
  signingKeys: SigningKeysJob;
  /** Ask the scheduler to run a job soon (respecting its backoff). */
  trigger: (job: string, delayMs?: number) => void;
}

export interface RuntimeOptions {
  identity: RuntimeIdentityInfo;
  layout: StateLayout;
  logger: Logger;
  clock?: Clock;
  random?: RandomSource;
  fetch?: FetchLike;
  intervals?: RuntimeIntervals;
  /** Builds the deployment handler; the bundle pipeline (src/agent/deploy/) when omitted. */
  deploymentHandler?: (ctx: RuntimeContext) => DeploymentHandler;
  /** Extra jobs. */
  extraJobs?: (ctx: RuntimeContext) => Job[];
  /** Outbox uploader settings for tests (size cap, watching, failure hooks); false leaves it out. */
  outbox?: Partial<Pick<OutboxJobOptions, 'maxBytes' | 'watch' | 'hooks'>> | false;
  /** Called after status.json is written (systemd STATUS=). */
  onStatus?: (doc: StatusDocument) => void;
}

/** The agent's long-running part: the jobs, their scheduler, state and status.json. */
export class AgentRuntime {
  readonly scheduler: Scheduler;
  private statusWriting: Promise<void> = Promise.resolve();
  private statusPending = false;

  private constructor(
    readonly ctx: RuntimeContext,
    jobs: Job[],
    private readonly startedAt: string,
    private readonly onStatus: ((doc: StatusDocument) => void) | undefined,
  ) {
    this.scheduler = new Scheduler(jobs, {
      clock: ctx.clock,
      random: ctx.random,
      logger: ctx.logger,
      onRunEnd: (report) => this.afterRun(report),
    });
  }

  static async create(options: RuntimeOptions): Promise<AgentRuntime> {
    const clock = options.clock ?? systemClock;
    const random = options.random ?? Math.random;
    const now = (): number => clock.now();
    const { identity, layout, logger } = options;
    const store = await StateStore.open(layout.stateFile, logger, now);
    const keys = await KeyStore.open(layout.keysFile, logger, now);
    const client = new AgentClient({
      baseUrl: identity.apiBaseUrl,
      agentId: identity.agentId,
      apiKey: identity.apiKey,
      allowInsecureHttp: identity.allowInsecureHttp,
      now,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
    const health = new Health(logger, { agentId: identity.agentId, envFile: identity.envFile, keyHint: keyHint(identity.apiKey) }, now);
    const intervals = options.intervals ?? {};
    const signingKeys = new SigningKeysJob(client, keys, logger, now, intervals.signingKeysMs ?? SIGNING_KEYS_INTERVAL_MS, intervals.signingKeysMs ?? SIGNING_KEYS_INTERVAL_MS);

    let scheduler: Scheduler | undefined;
    const ctx: RuntimeContext = {
      identity,
      layout,
      logger,
      clock,
      random,
      client,
      store,
      keys,
      health,
      signingKeys,
      trigger: (job, delayMs) => scheduler?.trigger(job, delayMs),
    };
    const startedAt = new Date(now()).toISOString();
    const handler = options.deploymentHandler?.(ctx) ?? createBundleDeploymentHandler(ctx);
    const jobs: Job[] = [
      new HeartbeatJob({
        client,
        store,
        health,
        hostMetrics: () => hostMetrics(layout.root),
        outboxCounts: () => outboxCounts(layout).catch((): OutboxCounts => ({ pending: 0, pending_bytes: 0, rejected: 0 })),
        startedAt,
        now,
        fixedIntervalMs: intervals.heartbeatMs,
      }),
      new DeploymentJob(client, store, handler, intervals.deploymentMs ?? DEPLOYMENT_INTERVAL_MS),
      // Status reports queued by the pipeline (persisted in state.json), sent in order with retry.
      new DeploymentReportsJob(client, store, logger),
      signingKeys,
      ...(options.outbox === false
        ? []
        : [new OutboxJob({ client, layout, logger, health, now, trigger: (delayMs) => ctx.trigger('outbox', delayMs), intervalMs: intervals.outboxMs, ...options.outbox })]),
      ...(options.extraJobs?.(ctx) ?? []),
    ];
    const runtime = new AgentRuntime(ctx, jobs, startedAt, options.onStatus);
    scheduler = runtime.scheduler;
    return runtime;
  }

  start(): void {
    this.scheduler.start();
    void this.writeStatus();
  }

  /** Runs every job once in order (heartbeat, deployment, signing keys, extras) for `run --once`. */
  async runOnce(): Promise<RunReport[]> {
    const reports = await this.scheduler.runOnce();
    await this.writeStatus();
    return reports;
  }

  /** Stops the jobs, aborting in-flight requests, then persists state and a final status. */
  async stop(): Promise<void> {
    await this.scheduler.stop();
    this.ctx.health.markStopped();
    await this.ctx.store.save().catch((err: unknown) => this.ctx.logger.error({ err }, 'saving state at shutdown failed'));
    await this.writeStatus();
  }

  private async afterRun(report: RunReport): Promise<void> {
    this.ctx.health.recordRun(report.job, report.disposition, report.error, report.nextRunAt, report.failures, report.idle);
    await this.writeStatus();
  }

  /** Coalesced: runs finishing together produce one write with the latest picture. */
  writeStatus(): Promise<void> {
    if (this.statusPending) return this.statusWriting;
    this.statusPending = true;
    this.statusWriting = this.statusWriting.then(async () => {
      this.statusPending = false;
      try {
        const doc = await this.statusDocument();
        await writeStatusFile(this.ctx.layout.statusFile, doc);
        this.onStatus?.(doc);
      } catch (err) {
        this.ctx.logger.warn({ err }, 'writing status.json failed');
      }
    });
    return this.statusWriting;
  }

  async statusDocument(): Promise<StatusDocument> {
    const { store, health, identity, layout, keys, clock } = this.ctx;
    const state = store.state;
    const jobs = health.jobHealth();
    const nextRuns = this.scheduler.nextRuns();
    for (const [name, at] of Object.entries(nextRuns)) {
      const entry = jobs[name];
      if (entry !== undefined && at > 0) entry.next_run_at = new Date(at).toISOString();
    }
    const heartbeatJob = jobs.heartbeat;
    const counts = await outboxCounts(layout).catch((): OutboxCounts => ({ pending: 0, pending_bytes: 0, rejected: 0 }));
    const target = state.deployment.target;
    const targetBundle = target?.deployment.bundle as { sha256?: unknown } | undefined;
    return {
      schema: 1,
      agent_id: identity.agentId,
      agent_version: AGENT_VERSION,
      pid: process.pid,
      api_base_url: identity.apiBaseUrl.href,
      env_file: identity.envFile,
      state_dir: layout.root,
      started_at: this.startedAt,
      updated_at: new Date(clock.now()).toISOString(),
      state: health.state(heartbeatJob?.last_success_at != null),
      heartbeat: {
        last_success_at: state.heartbeat.last_success_at,
        last_attempt_at: heartbeatJob?.last_run_at ?? null,
        last_error: heartbeatJob?.last_error ?? null,
        sequence: state.heartbeat.sequence,
        interval_seconds: state.heartbeat.interval_seconds ?? DEFAULT_HEARTBEAT_INTERVAL_S,
        consecutive_failures: heartbeatJob?.consecutive_failures ?? 0,
      },
      deployment: {
        current: state.deployment.current,
        previous: state.deployment.previous,
        target:
          target === null
            ? null
            : { deployment_id: target.deployment.deployment_id, bundle_sha256: typeof targetBundle?.sha256 === 'string' ? targetBundle.sha256 : null, seen_at: target.seen_at },
        failed: state.deployment.failed,
      },
      outbox: { ...counts, rejected_entries: counts.rejected > 0 ? await rejectedEntries(layout).catch(() => []) : [] },
      signing_keys: { kids: keys.kids(), fetched_at: keys.fetchedAt ?? null },
      jobs,
      problems: health.problems(),
    };
  }
}

/**
 * Names a key without revealing it: its public prefix and a short SHA-256 fingerprint, enough to
 * match against the console or another host's env file.
 */
export function keyHint(apiKey: string): string {
  const prefix = /^[a-z]+_[a-z]+_/.exec(apiKey)?.[0] ?? '';
  return `${prefix}… sha256:${createHash('sha256').update(apiKey).digest('hex').slice(0, 12)}`;
}
