import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkStateDir,
  checkSystemd,
  gatherOutbox,
  judgeDiskFree,
  judgeOutbox,
  judgeReportedScopes,
  spawnCommand,
  type CommandOutcome,
  type RunCommand,
} from '../../../src/commands/doctor/host.js';
import { StateLayout } from '../../../src/state/layout.js';
import type { StatusDocument } from '../../../src/state/status-file.js';
import { tempDir } from '../../support/tmp.js';

const NOW = Date.parse('2026-12-04T19:40:00Z');
const iso = (msAgo: number): string => new Date(NOW - msAgo).toISOString();
const MiB = 1024 * 1024;

function status(overrides: Partial<StatusDocument> = {}): StatusDocument {
  return {
    schema: 1,
    agent_id: 'agt_01',
    agent_version: '0.1.0',
    pid: 4242,
    api_base_url: 'https://api.byteor.test/',
    env_file: '/etc/byteor/agent.env',
    state_dir: '/var/lib/byteor-agent',
    started_at: iso(3_600_000),
    updated_at: iso(5_000),
    state: 'healthy',
    heartbeat: { last_success_at: iso(12_000), last_attempt_at: iso(12_000), last_error: null, sequence: 120, interval_seconds: 30, consecutive_failures: 0 },
    deployment: { current: null, previous: null, target: null, failed: null },
    outbox: { pending: 0, pending_bytes: 0, rejected: 0, rejected_entries: [] },
    signing_keys: { kids: ['k1'], fetched_at: iso(600_000) },
    jobs: {},
    problems: [],
    ...overrides,
  };
}

describe('doctor: state directory and disk', () => {
  it('passes a writable directory and leaves nothing behind', async () => {
    const dir = await tempDir();
    const { results, exists } = await checkStateDir(dir, { euid: 0, serviceAccount: undefined });
    expect(exists).toBe(true);
    expect(results).toEqual([{ name: 'state directory', status: 'pass', detail: `${dir} is writable as uid 0` }]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('fails a directory that takes no new file', async () => {
    // sysfs refuses file creation even to root (EACCES, or EROFS where it is mounted read-only).
    const { results } = await checkStateDir('/sys', { euid: process.geteuid?.(), serviceAccount: undefined });
    expect(results[0]).toMatchObject({ name: 'state directory', status: 'fail', detail: expect.stringMatching(/^\/sys is not writable/) as unknown });
  });

  it('fails a path that is a file, warns about one not created yet', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'state'), 'x');
    expect((await checkStateDir(join(dir, 'state'), { euid: 0, serviceAccount: undefined })).results[0]?.status).toBe('fail');
    const missing = await checkStateDir(join(dir, 'nope'), { euid: 0, serviceAccount: undefined });
    expect(missing).toMatchObject({ exists: false, results: [{ status: 'warn' }] });
  });

  it('fails a directory the service user does not own', async () => {
    const dir = await tempDir();
    const { results } = await checkStateDir(dir, { euid: 0, serviceAccount: { name: 'byteor-agent', uid: 4242, gid: 4242 } });
    expect(results.find((r) => r.name === 'state directory owner')).toMatchObject({ status: 'fail', fix: `chown -R byteor-agent:byteor-agent ${dir}` });
  });

  it('judges free space: fails under 128 MiB, warns under 1 GiB', () => {
    expect(judgeDiskFree(100 * MiB, 10_000 * MiB, '/s').status).toBe('fail');
    expect(judgeDiskFree(500 * MiB, 10_000 * MiB, '/s')).toMatchObject({ status: 'warn', detail: '500 MiB free for /s (5 % of 9.8 GiB): under 1 GiB' });
    expect(judgeDiskFree(5000 * MiB, 10_000 * MiB, '/s').status).toBe('pass');
  });
});

describe('doctor: outbox', () => {
  async function layoutWith(files: { pending?: { name: string; ageMs: number }[]; rejected?: { name: string; reason: string }[] }): Promise<StateLayout> {
    const layout = new StateLayout(await tempDir());
    await mkdir(layout.outboxTypeDir('incident_bundle'), { recursive: true });
    await mkdir(layout.rejectedDir, { recursive: true });
    for (const entry of files.pending ?? []) {
      const path = join(layout.outboxTypeDir('incident_bundle'), entry.name);
      await writeFile(path, 'x'.repeat(1000));
      const at = new Date(NOW - entry.ageMs);
      await utimes(path, at, at);
    }
    for (const entry of files.rejected ?? []) {
      await mkdir(join(layout.rejectedDir, entry.name));
      await writeFile(join(layout.rejectedDir, entry.name, 'reason.json'), JSON.stringify({ reason: entry.reason, type: 'incident_bundle', rejected_at: iso(1000) }));
    }
    return layout;
  }

  it('passes an empty outbox', async () => {
    const layout = await layoutWith({});
    expect(judgeOutbox(await gatherOutbox(layout, NOW), layout).map((r) => r.status)).toEqual(['pass', 'pass']);
  });

  it('passes a fresh backlog, warns about one stuck for more than 15 minutes', async () => {
    const fresh = await layoutWith({ pending: [{ name: 'a.tar.gz', ageMs: 20_000 }] });
    expect(judgeOutbox(await gatherOutbox(fresh, NOW), fresh)[0]).toMatchObject({ status: 'pass', detail: '1 waiting to upload (1000 B), oldest 20 s' });
    const stuck = await layoutWith({ pending: [{ name: 'a.tar.gz', ageMs: 20_000 }, { name: 'b.tar.gz', ageMs: 3_600_000 }] });
    expect(judgeOutbox(await gatherOutbox(stuck, NOW), stuck)[0]).toMatchObject({ status: 'warn', detail: '2 waiting to upload (2.0 KiB), oldest 60 min: uploads are not going through' });
  });

  it('warns about rejected entries with their reasons', async () => {
    const layout = await layoutWith({ rejected: [{ name: 'huge.tar.gz', reason: 'larger than 64 MiB' }] });
    const [, rejected] = judgeOutbox(await gatherOutbox(layout, NOW), layout);
    expect(rejected).toMatchObject({ name: 'outbox rejected', status: 'warn' });
    expect(rejected?.detail).toContain('huge.tar.gz (incident_bundle): larger than 64 MiB');
  });
});

describe('doctor: scopes reported by the running agent', () => {
  it('passes both when the running agent heartbeats and reports no missing scope, saying it did not test them', () => {
    const results = judgeReportedScopes({ kind: 'ok', doc: status() }, NOW);
    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['scope agent:heartbeat', 'pass'],
      ['scope agent:artifact_upload', 'pass'],
    ]);
    expect(results[0]?.detail).toMatch(/last heartbeat was accepted 12 s ago/);
    expect(results[1]?.detail).toMatch(/doctor does not test it itself/);
  });

  it('fails the scope the running agent reports missing', () => {
    const doc = status({ state: 'degraded', problems: [{ code: 'scope_missing', message: 'runtime key lacks agent:artifact_upload', fix: '…', since: iso(1000) }] });
    const results = judgeReportedScopes({ kind: 'ok', doc }, NOW);
    expect(results.map((r) => r.status)).toEqual(['pass', 'fail']);
    expect(results[1]?.fix).toMatch(/grant agent:artifact_upload to agent agt_01/);
  });

  it('warns (unknown) when no running agent reports: missing or stale status.json', () => {
    expect(judgeReportedScopes({ kind: 'missing' }, NOW)).toEqual([expect.objectContaining({ status: 'warn', detail: expect.stringMatching(/has not run yet/) as unknown })]);
    const stale = judgeReportedScopes({ kind: 'ok', doc: status({ updated_at: iso(3_600_000) }) }, NOW);
    expect(stale[0]).toMatchObject({ status: 'warn', detail: expect.stringMatching(/not running/) as unknown });
  });
});

describe('doctor: systemd unit', () => {
  const runner = (answers: Record<string, CommandOutcome | 'missing'>): RunCommand & { calls: string[] } => {
    const calls: string[] = [];
    const run = async (command: string, args: readonly string[]): Promise<CommandOutcome | 'missing'> => {
      calls.push(`${command} ${args.join(' ')}`);
      return answers[args[0] ?? ''] ?? 'missing';
    };
    return Object.assign(run, { calls });
  };
  const out = (stdout: string, code = 0, stderr = ''): CommandOutcome => ({ code, stdout, stderr });

  it('passes an active unit', async () => {
    const run = runner({ 'is-active': out('active\n') });
    expect(await checkSystemd(run)).toMatchObject({ status: 'pass', detail: 'byteor-agent.service is active' });
    expect(run.calls).toEqual(['systemctl is-active byteor-agent']);
  });

  it('fails a failed unit, naming exit 78 as a configuration error', async () => {
    const run = runner({ 'is-active': out('failed\n', 3), show: out('LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nExecMainStatus=78\n') });
    expect(await checkSystemd(run)).toMatchObject({ status: 'fail', detail: expect.stringMatching(/exit 78: invalid configuration/) as unknown });
  });

  it('fails a stopped unit and a restart loop', async () => {
    expect((await checkSystemd(runner({ 'is-active': out('inactive\n', 3), show: out('LoadState=loaded\nSubState=dead\n') })))?.status).toBe('fail');
    const looping = await checkSystemd(runner({ 'is-active': out('activating\n', 3), show: out('LoadState=loaded\nSubState=auto-restart\nResult=exit-code\nExecMainStatus=1\n') }));
    expect(looping).toMatchObject({ status: 'fail', detail: 'byteor-agent.service keeps restarting (exit status 1, result exit-code)' });
  });

  it('warns when the unit is not installed, passes on a host without systemd, says nothing without systemctl', async () => {
    expect((await checkSystemd(runner({ 'is-active': out('inactive\n', 3), show: out('LoadState=not-found\n') })))?.status).toBe('warn');
    const noSystemd = runner({ 'is-active': out('', 1, 'System has not been booted with systemd as init system (PID 1). Can\'t operate.\n'), show: out('', 1) });
    expect((await checkSystemd(noSystemd))?.status).toBe('pass');
    expect(await checkSystemd(runner({}))).toBeUndefined();
  });

  it('spawns commands without a shell and reports a missing one', async () => {
    expect(await spawnCommand('byteor-no-such-command-xyz', [])).toBe('missing');
    expect(await spawnCommand(process.execPath, ['-e', 'process.stdout.write("active\\n"); process.exit(3)'])).toEqual({ code: 3, stdout: 'active\n', stderr: '' });
  });
});
