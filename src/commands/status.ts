import { join } from 'node:path';
import { type Config, type ConfigFlags } from '../config/config.js';
import { loadCommandConfig } from './load-config.js';
import { AgentError, ExitCode } from '../errors.js';
import { readStatusFile, type StatusDocument, type StatusRead } from '../state/status-file.js';
import { formatBytes, formatDuration } from '../util/format.js';
import { sleep } from '../util/sleep.js';
import type { CommandContext } from './context.js';

export interface StatusOptions extends ConfigFlags {
  json?: boolean | undefined;
  wait?: string | undefined;
}

/** LSB-style codes, so `status` serves as a health check. */
export const StatusExit = { healthy: 0, unhealthy: 1, notRunning: 3 } as const;

const POLL_MS = 500;

export interface StatusVerdict {
  exitCode: number;
  /** One line: what is going on. */
  summary: string;
  stale: boolean;
  ageMs: number | undefined;
}

/** Whether status.json still describes a live agent: it is rewritten after every job run. */
export function isStale(doc: StatusDocument, nowMs: number): boolean {
  if (doc.state === 'stopped') return false;
  const age = nowMs - Date.parse(doc.updated_at);
  return age > Math.max(3 * doc.heartbeat.interval_seconds * 1000, 120_000);
}

/** Pure: what a status document means for a health check. */
export function judge(read: StatusRead, config: Pick<Config, 'agentId' | 'stateDir'>, nowMs: number): StatusVerdict {
  if (read.kind === 'missing') {
    const enrolled = config.agentId === undefined ? 'not enrolled (run `byteor-agent enroll`)' : `enrolled as ${config.agentId}`;
    return { exitCode: StatusExit.notRunning, summary: `not running: the agent has not run yet (no status.json in ${config.stateDir}); ${enrolled}`, stale: false, ageMs: undefined };
  }
  if (read.kind === 'unreadable') {
    return { exitCode: StatusExit.notRunning, summary: `cannot read ${join(config.stateDir, 'status.json')}: ${read.problem}`, stale: false, ageMs: undefined };
  }
  const doc = read.doc;
  const ageMs = nowMs - Date.parse(doc.updated_at);
  if (doc.state === 'stopped') return { exitCode: StatusExit.notRunning, summary: `stopped (${formatDuration(ageMs)} ago)`, stale: false, ageMs };
  if (isStale(doc, nowMs)) {
    return { exitCode: StatusExit.notRunning, summary: `not running or hung: status last updated ${formatDuration(ageMs)} ago by pid ${doc.pid}`, stale: true, ageMs };
  }
  if (doc.state === 'healthy') return { exitCode: StatusExit.healthy, summary: 'healthy', stale: false, ageMs };
  if (doc.state === 'starting') return { exitCode: StatusExit.unhealthy, summary: 'starting: no heartbeat has succeeded yet', stale: false, ageMs };
  return { exitCode: StatusExit.unhealthy, summary: doc.state, stale: false, ageMs };
}

function ago(iso: string | null, nowMs: number): string {
  if (iso === null) return 'never';
  return `${formatDuration(nowMs - Date.parse(iso))} ago`;
}

export function renderStatus(doc: StatusDocument, verdict: StatusVerdict, nowMs: number): string {
  const lines: string[] = [];
  const row = (label: string, value: string): void => {
    lines.push(`${`${label}:`.padEnd(15)}${value}`);
  };
  row('Agent', `${doc.agent_id} (byteor-agent ${doc.agent_version}), enrolled via ${doc.env_file}`);
  row('State', `${verdict.summary} (pid ${doc.pid}, up ${formatDuration(nowMs - Date.parse(doc.started_at))})`);
  row('Control plane', doc.api_base_url);
  const hb = doc.heartbeat;
  const failing = hb.consecutive_failures > 0 ? `; ${hb.consecutive_failures} failing: ${hb.last_error ?? ''}` : '';
  row('Heartbeat', `last ok ${ago(hb.last_success_at, nowMs)} (#${hb.sequence}, every ${hb.interval_seconds} s)${failing}`);
  const dep = doc.deployment;
  if (dep.current !== null) {
    row('Deployment', `${dep.current.deployment_id} ${dep.current.state}, bundle ${dep.current.bundle_sha256.slice(0, 12)}…, since ${dep.current.activated_at}`);
  } else if (dep.target !== null) {
    row('Deployment', `${dep.target.deployment_id} received ${ago(dep.target.seen_at, nowMs)}, not active yet`);
  } else {
    row('Deployment', 'none');
  }
  if (dep.failed !== null) row('Last failure', `${dep.failed.deployment_id}: ${dep.failed.reason} (${dep.failed.message})`);
  row('Outbox', `${doc.outbox.pending} pending (${formatBytes(doc.outbox.pending_bytes)}), ${doc.outbox.rejected} rejected`);
  for (const entry of doc.outbox.rejected_entries) lines.push(`${''.padEnd(15)}rejected ${entry.name} (${entry.type}): ${entry.reason}`);
  row('Signing keys', doc.signing_keys.kids.length === 0 ? 'none yet' : `${doc.signing_keys.kids.join(', ')} (checked ${ago(doc.signing_keys.fetched_at, nowMs)})`);
  if (doc.problems.length === 0) row('Problems', 'none');
  else {
    row('Problems', String(doc.problems.length));
    for (const p of doc.problems) {
      lines.push(`  - ${p.code}: ${p.message} (since ${p.since})`);
      lines.push(`    fix: ${p.fix}`);
    }
  }
  return lines.join('\n');
}

function heartbeatSinceStart(read: StatusRead, nowMs: number): boolean {
  if (read.kind !== 'ok') return false;
  const { doc } = read;
  if (isStale(doc, nowMs) || doc.state === 'stopped' || doc.heartbeat.last_success_at === null) return false;
  return Date.parse(doc.heartbeat.last_success_at) >= Date.parse(doc.started_at);
}

export async function runStatus(options: StatusOptions, ctx: CommandContext): Promise<number> {
  const config = await loadCommandConfig(options, ctx);
  const path = join(config.stateDir, 'status.json');
  let read = await readStatusFile(path);

  if (options.wait !== undefined) {
    const waitSeconds = Number(options.wait);
    if (!Number.isFinite(waitSeconds) || waitSeconds < 0) throw new AgentError(`--wait takes a number of seconds, not "${options.wait}"`, ExitCode.usage);
    const deadline = Date.now() + waitSeconds * 1000;
    while (!heartbeatSinceStart(read, Date.now()) && Date.now() < deadline) {
      await sleep(POLL_MS, ctx.signal);
      read = await readStatusFile(path);
    }
    if (!heartbeatSinceStart(read, Date.now())) {
      const verdict = judge(read, config, Date.now());
      ctx.stderr(`no successful heartbeat within ${waitSeconds} s: ${verdict.summary}`);
      if (read.kind === 'ok') ctx.stderr(renderStatus(read.doc, verdict, Date.now()));
      ctx.stderr('Logs: journalctl -u byteor-agent');
      return verdict.exitCode === StatusExit.healthy ? StatusExit.unhealthy : verdict.exitCode;
    }
  }

  const now = Date.now();
  const verdict = judge(read, config, now);
  if (options.json === true) {
    const body = read.kind === 'ok' ? { ...read.doc, stale: verdict.stale, summary: verdict.summary } : { state: 'not_running', summary: verdict.summary, agent_id: config.agentId ?? null };
    ctx.stdout(JSON.stringify(body, null, 2));
  } else if (read.kind === 'ok') {
    ctx.stdout(renderStatus(read.doc, verdict, now));
  } else {
    ctx.stdout(`byteor-agent: ${verdict.summary}`);
  }
  return verdict.exitCode;
}
