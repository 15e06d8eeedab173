import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, open, readdir, stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { outboxCounts, rejectedEntries } from '../../agent/outbox-counts.js';
import { ARTIFACT_TYPES } from '../../api/types.js';
import type { StateLayout } from '../../state/layout.js';
import type { RejectedEntry, StatusRead } from '../../state/status-file.js';
import { formatBytes, formatDuration } from '../../util/format.js';
import { isStale } from '../status.js';
import { fail, pass, warn, type CheckResult } from './check.js';
import type { ServiceAccount } from './env-file.js';

const errCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? String(err);

/**
 * The state directory exists, is a directory, and takes a new file: a temporary dot-file (the
 * agent ignores dot-names) created exclusively and removed at once, so nothing is left behind.
 */
export async function checkStateDir(dir: string, context: { euid: number | undefined; serviceAccount: ServiceAccount | undefined }): Promise<{ results: CheckResult[]; exists: boolean }> {
  const name = 'state directory';
  let info;
  try {
    info = await stat(dir);
  } catch (err) {
    if (errCode(err) === 'ENOENT') {
      return { results: [warn(name, `${dir} does not exist yet; the agent creates it when it starts (systemd: StateDirectory=)`, 'start the agent: systemctl start byteor-agent')], exists: false };
    }
    return { results: [fail(name, `cannot examine ${dir} (${errCode(err)})`, 'run doctor as root (sudo byteor-agent doctor)')], exists: false };
  }
  if (!info.isDirectory()) return { results: [fail(name, `${dir} exists but is not a directory`, 'move it away or point BYTEOR_STATE_DIR at a directory')], exists: false };

  const probe = join(dir, `.doctor-${process.pid}-${randomBytes(4).toString('hex')}`);
  const who = context.euid === undefined ? '' : ` as uid ${context.euid}`;
  const results: CheckResult[] = [];
  try {
    const handle = await open(probe, 'wx', 0o600);
    try {
      await handle.write('doctor\n');
      await handle.sync();
    } finally {
      await handle.close();
      await unlink(probe).catch(() => undefined);
    }
    results.push(pass(name, `${dir} is writable${who}`));
  } catch (err) {
    const code = errCode(err);
    const fix =
      code === 'EACCES' || code === 'EPERM'
        ? `run doctor as root or as the service user; the directory belongs to the service user (chown -R byteor-agent:byteor-agent ${dir})`
        : code === 'EROFS'
          ? 'the filesystem is read-only: remount it read-write or point BYTEOR_STATE_DIR at a writable place'
          : code === 'ENOSPC' || code === 'EDQUOT'
            ? 'free space on that filesystem'
            : 'check the directory';
    results.push(fail(name, `${dir} is not writable${who} (${code})`, fix));
  }
  const account = context.serviceAccount;
  if (account !== undefined && info.uid !== account.uid) {
    results.push(fail('state directory owner', `${dir} belongs to uid ${info.uid}, not the service user ${account.name} (uid ${account.uid}): the service cannot write its state`, `chown -R ${account.name}:${account.name} ${dir}`));
  }
  return { results, exists: true };
}

/** Below this the agent cannot stage a bundle or pack a 64 MiB artifact. */
const DISK_FAIL_BYTES = 128 * 1024 * 1024;
const DISK_WARN_BYTES = 1024 * 1024 * 1024;

/** Pure: free space on the state directory's filesystem, as the (unprivileged) agent sees it. */
export function judgeDiskFree(freeBytes: number, totalBytes: number, dir: string): CheckResult {
  const name = 'disk space';
  const share = totalBytes > 0 ? ` (${Math.round((freeBytes / totalBytes) * 100)} % of ${formatBytes(totalBytes)})` : '';
  const summary = `${formatBytes(freeBytes)} free for ${dir}${share}`;
  if (freeBytes < DISK_FAIL_BYTES) return fail(name, `${summary}: too little to download a bundle or pack an upload`, 'free space on that filesystem (the agent keeps two bundles and its outbox there)');
  if (freeBytes < DISK_WARN_BYTES) return warn(name, `${summary}: under 1 GiB`, 'free space on that filesystem before it fills');
  return pass(name, summary);
}

export async function checkDiskFree(dir: string): Promise<CheckResult> {
  try {
    const s = await statfs(dir);
    return judgeDiskFree(s.bavail * s.bsize, s.blocks * s.bsize, dir);
  } catch (err) {
    return warn('disk space', `cannot measure free space for ${dir} (${errCode(err)})`, 'check with df -h');
  }
}

export interface OutboxFacts {
  pending: number;
  pendingBytes: number;
  /** Age of the oldest pending entry (ms), undefined when none. */
  oldestPendingMs: number | undefined;
  rejected: RejectedEntry[];
  rejectedCount: number;
}

/** A pending entry older than this is stuck: the outbox is scanned every 10 s. */
const STUCK_AFTER_MS = 15 * 60_000;

/** Pure: the outbox lines. */
export function judgeOutbox(facts: OutboxFacts, layout: StateLayout): CheckResult[] {
  const out: CheckResult[] = [];
  if (facts.pending === 0) out.push(pass('outbox', 'nothing waiting to upload'));
  else {
    const summary = `${facts.pending} waiting to upload (${formatBytes(facts.pendingBytes)}), oldest ${formatDuration(facts.oldestPendingMs ?? 0)}`;
    if ((facts.oldestPendingMs ?? 0) > STUCK_AFTER_MS) {
      out.push(warn('outbox', `${summary}: uploads are not going through`, 'see the agent:artifact_upload and control-plane lines, then `byteor-agent status` and journalctl -u byteor-agent for the upload errors'));
    } else out.push(pass('outbox', summary));
  }
  if (facts.rejectedCount === 0) out.push(pass('outbox rejected', 'no artifact was refused'));
  else {
    const listed = facts.rejected
      .slice(-5)
      .map((entry) => `${entry.name} (${entry.type}): ${entry.reason}`)
      .join('; ');
    out.push(
      warn(
        'outbox rejected',
        `${facts.rejectedCount} artifact(s) refused for good and kept in ${layout.rejectedDir}: ${listed}`,
        `read each entry's reason.json there, then remove the entry once dealt with (the agent never retries them)`,
      ),
    );
  }
  return out;
}

async function oldestPending(layout: StateLayout, nowMs: number): Promise<number | undefined> {
  let oldest: number | undefined;
  for (const type of ARTIFACT_TYPES) {
    let names: string[];
    try {
      names = (await readdir(layout.outboxTypeDir(type))).filter((n) => !n.startsWith('.'));
    } catch {
      continue;
    }
    for (const n of names) {
      const info = await lstat(join(layout.outboxTypeDir(type), n)).catch(() => undefined);
      if (info !== undefined && (oldest === undefined || info.mtimeMs < oldest)) oldest = info.mtimeMs;
    }
  }
  return oldest === undefined ? undefined : Math.max(0, nowMs - oldest);
}

/** Reads the outbox directories themselves (not status.json): they are the truth even with the agent down. */
export async function gatherOutbox(layout: StateLayout, nowMs: number): Promise<OutboxFacts> {
  const counts = await outboxCounts(layout);
  const rejected = counts.rejected > 0 ? await rejectedEntries(layout) : [];
  return { pending: counts.pending, pendingBytes: counts.pending_bytes, oldestPendingMs: await oldestPending(layout, nowMs), rejected, rejectedCount: counts.rejected };
}

const NOT_TESTED = 'doctor does not test it itself: that would send a heartbeat or upload an artifact, changing control-plane state';

/**
 * Pure: agent:heartbeat and agent:artifact_upload, as the running agent reports them in
 * status.json. Testing them directly would write to the control plane.
 */
export function judgeReportedScopes(read: StatusRead, nowMs: number): CheckResult[] {
  const scopes = ['agent:heartbeat', 'agent:artifact_upload'] as const;
  if (read.kind !== 'ok' || isStale(read.doc, nowMs) || read.doc.state === 'stopped') {
    const why = read.kind === 'missing' ? 'the agent has not run yet (no status.json)' : read.kind === 'unreadable' ? `status.json cannot be read (${read.problem})` : read.doc.state === 'stopped' ? 'the agent is stopped' : 'the agent is not running (status.json is stale)';
    return [warn(`scopes ${scopes.join(', ')}`, `unknown: ${why}; ${NOT_TESTED}`, 'start the agent (systemctl start byteor-agent), then run doctor again or `byteor-agent status`')];
  }
  const { doc } = read;
  const missing = (scope: string): boolean => doc.problems.some((p) => p.code === 'scope_missing' && p.message.includes(scope));
  const age = `status.json updated ${formatDuration(nowMs - Date.parse(doc.updated_at))} ago`;
  const out: CheckResult[] = [];
  for (const scope of scopes) {
    const name = `scope ${scope}`;
    if (missing(scope)) {
      out.push(fail(name, `missing, says the running agent (${age}): the key lacks ${scope}`, `grant ${scope} to agent ${doc.agent_id} in the ByteOr console; the agent re-checks every 15 min`));
    } else if (doc.state === 'unauthorized') {
      out.push(warn(name, `unknown: the running agent's key is rejected (401), so no scope can work`, 'see the runtime key line'));
    } else if (scope === 'agent:heartbeat') {
      const last = doc.heartbeat.last_success_at;
      if (last !== null && Date.parse(last) >= Date.parse(doc.started_at)) out.push(pass(name, `works: the running agent's last heartbeat was accepted ${formatDuration(nowMs - Date.parse(last))} ago (from ${age}; ${NOT_TESTED})`));
      else out.push(warn(name, `no heartbeat accepted since the agent started (${age}): ${doc.heartbeat.last_error ?? 'none sent yet'}`, 'see the control-plane lines above and `byteor-agent status`'));
    } else {
      out.push(pass(name, `not reported missing by the running agent (${age}; it learns of a missing scope at its first upload; ${NOT_TESTED})`));
    }
  }
  return out;
}

export interface CommandOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without a shell, asynchronously; 'missing' when it is not installed. */
export type RunCommand = (command: string, args: readonly string[]) => Promise<CommandOutcome | 'missing'>;

/** Pure: the unit's state from `systemctl is-active` and `systemctl show`. */
export function judgeSystemd(isActive: CommandOutcome, show: Record<string, string>): CheckResult {
  const name = 'systemd unit';
  const state = isActive.stdout.trim().split('\n')[0] ?? '';
  const logs = 'journalctl -u byteor-agent -n 50';
  if (/not been booted with systemd|Failed to connect to bus|Host is down/i.test(isActive.stderr)) {
    return pass(name, 'systemd is not running on this host, so there is no unit to check (the agent is run some other way)');
  }
  const sub = show.SubState === undefined || show.SubState === '' ? '' : ` (${show.SubState})`;
  if (state === 'active') return pass(name, `byteor-agent.service is active${sub}`);
  if (show.LoadState === 'not-found') return warn(name, 'byteor-agent.service is not installed', 'install with the one-line installer; on a development machine, ignore this');
  const exit = show.ExecMainStatus;
  if (state === 'failed' || show.SubState === 'auto-restart') {
    if (exit === '78') return fail(name, 'byteor-agent.service stopped with exit 78: invalid configuration (systemd does not restart it)', `fix the configuration (see above), then systemctl restart byteor-agent; logs: ${logs}`);
    const result = show.Result === undefined || show.Result === '' ? '' : `, result ${show.Result}`;
    return fail(name, `byteor-agent.service ${state === 'failed' ? 'has failed' : 'keeps restarting'}${exit === undefined ? '' : ` (exit status ${exit}${result})`}`, `read the logs: ${logs}; then systemctl reset-failed byteor-agent && systemctl restart byteor-agent`);
  }
  if (state === 'activating' || state === 'reloading' || state === 'deactivating') return warn(name, `byteor-agent.service is ${state}${sub}`, `wait a few seconds and run doctor again; logs: ${logs}`);
  if (state === 'inactive') return fail(name, 'byteor-agent.service is not running', 'systemctl enable --now byteor-agent');
  return warn(name, `systemctl says "${state || isActive.stderr.trim() || 'nothing'}"`, `check systemctl status byteor-agent; logs: ${logs}`);
}

export function parseShow(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** The unit line, or undefined when this host has no systemctl at all. */
export async function checkSystemd(run: RunCommand): Promise<CheckResult | undefined> {
  const active = await run('systemctl', ['is-active', 'byteor-agent']);
  if (active === 'missing') return undefined;
  if (active.stdout.trim() === 'active') return judgeSystemd(active, {});
  const show = await run('systemctl', ['show', 'byteor-agent', '--property=LoadState,ActiveState,SubState,Result,ExecMainStatus']);
  return judgeSystemd(active, show === 'missing' ? {} : parseShow(show.stdout));
}

/** spawn (never execFileSync: the event loop must not block), bounded in time and output. */
export const spawnCommand: RunCommand = (command, args) =>
  new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', SYSTEMD_PAGER: '' } });
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.stdout.on('data', (chunk: Buffer) => {
      if (stdout.length < 64 * 1024) stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += chunk.toString();
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ENOENT' ? 'missing' : { code: null, stdout, stderr: `${stderr}${err.message}` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
