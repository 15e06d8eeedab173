import { AgentRuntime, type RuntimeIntervals, type RuntimeOptions } from '../agent/runtime.js';
import { SystemdNotifier } from '../agent/systemd-notify.js';
import type { Clock, RandomSource } from '../agent/clock.js';
import { requireIdentity, type ConfigFlags } from '../config/config.js';
import { loadCommandConfig } from './load-config.js';
import { AgentError, ExitCode, errorMessage } from '../errors.js';
import { createLogger, registerSecret, type Logger } from '../log.js';
import { openStateDir, StateDirError } from '../state/state-dir.js';
import type { StatusDocument } from '../state/status-file.js';
import { AGENT_VERSION } from '../version.js';
import type { CommandContext } from './context.js';

export interface RunOptions extends ConfigFlags {
  once?: boolean | undefined;
  devHeartbeatInterval?: string | undefined;
  devDeploymentInterval?: string | undefined;
  devOutboxInterval?: string | undefined;
}

/** Test seams: virtual time and randomness, and plug-ins added by later stages. */
export interface RunDeps {
  clock?: Clock;
  random?: RandomSource;
  plugins?: Pick<RuntimeOptions, 'deploymentHandler' | 'extraJobs'>;
  /** Called once the runtime has started (tests use it to know when to act). */
  onStarted?: (runtime: AgentRuntime) => void;
}

/** SIGTERM must end in exit 0 within 10 s (DESIGN.md); leave a margin under systemd's timeout. */
export const SHUTDOWN_DEADLINE_MS = 8_000;

function seconds(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new AgentError(`${flag} must be a positive number of seconds, not "${value}"`, ExitCode.usage);
  return n * 1000;
}

function intervalsFrom(options: RunOptions): RuntimeIntervals {
  const out: RuntimeIntervals = {};
  const heartbeat = seconds('--dev-heartbeat-interval', options.devHeartbeatInterval);
  const deployment = seconds('--dev-deployment-interval', options.devDeploymentInterval);
  const outbox = seconds('--dev-outbox-interval', options.devOutboxInterval);
  if (heartbeat !== undefined) out.heartbeatMs = heartbeat;
  if (deployment !== undefined) out.deploymentMs = deployment;
  if (outbox !== undefined) out.outboxMs = outbox;
  return out;
}

function systemdStatusLine(doc: StatusDocument): string {
  const problems = doc.problems.map((p) => p.code).join(', ');
  return `${doc.state}${problems === '' ? '' : ` (${problems})`}; heartbeat #${doc.heartbeat.sequence}`;
}

async function withDeadline(work: Promise<void>, ms: number, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      logger.error({ deadlineMs: ms }, 'shutdown did not finish in time; exiting anyway (state files are always consistent on disk)');
      resolve();
    }, ms);
    timer.unref();
  });
  try {
    await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runRun(options: RunOptions, ctx: CommandContext, deps: RunDeps = {}): Promise<number> {
  const config = await loadCommandConfig(options, ctx);
  const identity = requireIdentity(config);
  registerSecret(identity.apiKey);
  const intervals = intervalsFrom(options);
  const logger = createLogger({ level: config.logLevel, base: { agent: identity.agentId }, ...(ctx.logDestination ? { destination: ctx.logDestination } : {}) });

  let layout;
  try {
    layout = await openStateDir(config.stateDir);
  } catch (err) {
    if (err instanceof StateDirError) {
      const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
      throw new AgentError(err.message, code === 'ENOSPC' ? ExitCode.tempFail : ExitCode.config);
    }
    throw err;
  }

  const notifier = new SystemdNotifier(ctx.env, logger);
  const runtime = await AgentRuntime.create({
    identity: {
      apiBaseUrl: identity.apiBaseUrl,
      agentId: identity.agentId,
      apiKey: identity.apiKey,
      envFile: config.envFile,
      allowInsecureHttp: config.allowInsecureHttp,
      environmentId: config.environmentId,
      environmentPosture: config.environmentPosture,
    },
    layout,
    logger,
    intervals,
    ...(deps.clock ? { clock: deps.clock } : {}),
    ...(deps.random ? { random: deps.random } : {}),
    ...(ctx.fetch ? { fetch: ctx.fetch } : {}),
    ...deps.plugins,
    onStatus: (doc) => void notifier.status(systemdStatusLine(doc)),
  });

  if (options.once === true) {
    const reports = await runtime.runOnce();
    const failed = reports.filter((r) => r.disposition.kind !== 'success');
    for (const report of reports) {
      ctx.stderr(`${report.job}: ${report.disposition.kind === 'success' ? 'ok' : `failed (${errorMessage(report.error)})`}`);
    }
    return failed.length === 0 ? ExitCode.ok : ExitCode.failure;
  }

  logger.info(
    { version: AGENT_VERSION, apiBaseUrl: identity.apiBaseUrl.origin, stateDir: layout.root, envFile: config.envFile, systemd: notifier.active },
    `byteor-agent ${AGENT_VERSION} starting as ${identity.agentId}`,
  );
  runtime.start();
  void notifier.ready('running');
  let stopping = false;
  notifier.startWatchdog(() => !stopping);
  deps.onStarted?.(runtime);

  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  stopping = true;
  logger.info({ signal: String(ctx.signal.reason ?? 'abort') }, 'shutting down');
  await notifier.stopping();
  await withDeadline(runtime.stop(), SHUTDOWN_DEADLINE_MS, logger);
  logger.info('stopped');
  return ExitCode.ok;
}
