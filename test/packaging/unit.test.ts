/**
 * The systemd unit and the shape of install.sh, checked statically: what systemd will do with the
 * unit, the sandbox score, and the properties that make a truncated `curl | bash` harmless.
 * Tools that may be missing on a developer's machine (shellcheck, systemd-analyze) skip their
 * test; CI installs them.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { INSTALL_SH, UNIT_FILE, commandExists } from './harness.js';

const unitText = readFileSync(UNIT_FILE, 'utf8');
const installText = readFileSync(INSTALL_SH, 'utf8');

/** [Section] -> key -> values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section !== null) {
      current = new Map();
      sections.set(section[1] ?? '', current);
      continue;
    }
    const eq = line.indexOf('=');
    if (current === undefined || eq < 0) throw new Error(`unexpected line in the unit: ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

const service = parseUnit(unitText).get('Service') ?? new Map<string, string[]>();
const one = (key: string): string | undefined => service.get(key)?.at(-1);

function seconds(value: string | undefined): number {
  const match = /^(\d+)(s|min)?$/.exec(value ?? '');
  if (match === null) throw new Error(`not a duration: ${value}`);
  return Number(match[1]) * (match[2] === 'min' ? 60 : 1);
}

describe('packaging/systemd/byteor-agent.service', () => {
  it('is a notify service whose readiness and watchdog pings, sent by spawned systemd-notify, are accepted', () => {
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('all');
    expect(seconds(one('WatchdogSec'))).toBeGreaterThanOrEqual(10);
  });

  it('runs the agent as the byteor-agent user with its env file and a private state directory', () => {
    expect(one('User')).toBe('byteor-agent');
    expect(one('Group')).toBe('byteor-agent');
    expect(one('DynamicUser')).toBeUndefined();
    expect(one('StateDirectory')).toBe('byteor-agent');
    expect(one('StateDirectoryMode')).toBe('0700');
    expect(one('ExecStart')).toBe('/usr/local/bin/byteor-agent run --config /etc/byteor/agent.env');
    // The key stays out of the process environment: the agent reads the file itself.
    expect(one('EnvironmentFile')).toBeUndefined();
  });

  it('enrolls on first boot as root, outside the sandbox, and is a no-op once enrolled', () => {
    const pre = one('ExecStartPre') ?? '';
    expect(pre.startsWith('+')).toBe(true);
    expect(pre).toContain('/usr/local/bin/byteor-agent enroll --if-needed --config /etc/byteor/agent.env');
  });

  it('leaves permanent enrollment failures to ExecStart, whose exit 78 stops the restarts', () => {
    // What systemd runs: `$$` in a unit is a literal `$`.
    const pre = (one('ExecStartPre') ?? '').replaceAll('$$', '$');
    const shell = /^\+\/bin\/sh -c '(.*)'$/.exec(pre)?.[1];
    expect(shell).toBeDefined();
    const outcome = (enrollExit: number): number | null =>
      spawnSync('sh', ['-c', (shell ?? '').replace('/usr/local/bin/byteor-agent enroll --if-needed --config /etc/byteor/agent.env', `(exit ${enrollExit})`)]).status;
    expect(outcome(0)).toBe(0);
    for (const permanent of [64, 65, 77, 78]) expect(outcome(permanent)).toBe(0);
    for (const transient of [69, 70, 75, 1]) expect(outcome(transient)).toBe(transient);
  });

  it('restarts on failure within a start limit, never on an invalid configuration, and outwaits the agent’s 10 s shutdown', () => {
    const unitSection = parseUnit(unitText).get('Unit');
    expect(one('Restart')).toBe('on-failure');
    expect(one('RestartPreventExitStatus')).toBe('78');
    expect(unitSection?.get('StartLimitIntervalSec')).toBeDefined();
    expect(Number(unitSection?.get('StartLimitBurst')?.[0])).toBeGreaterThan(0);
    expect(seconds(one('TimeoutStopSec'))).toBeGreaterThan(10);
  });

  it('keeps what the agent needs through the sandbox: IPv4/IPv6, AF_UNIX, writable state, and a JIT', () => {
    expect(one('RestrictAddressFamilies')?.split(/\s+/).sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
    expect(one('PrivateNetwork')).toBeUndefined();
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ReadOnlyPaths')).toBeUndefined();
    // V8 needs to make code pages executable (see the comment in the unit).
    expect(one('MemoryDenyWriteExecute')).toBeUndefined();
  });

  it.skipIf(!commandExists('systemd-analyze'))('scores at most 1.5 in systemd-analyze security --offline=true', () => {
    const result = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', UNIT_FILE], { encoding: 'utf8' });
    const score = /Overall exposure level for [^:]+: ([0-9.]+)/.exec(result.stdout)?.[1];
    expect(score, result.stdout + result.stderr).toBeDefined();
    expect(Number(score)).toBeLessThanOrEqual(1.5);
  });

  it.skipIf(!commandExists('systemd-analyze'))('passes systemd-analyze verify without a word', () => {
    // verify requires ExecStart binaries to exist: point them at one that does.
    const dir = mkdtempSync(join(tmpdir(), 'byteor-unit-'));
    try {
      const copy = join(dir, 'byteor-agent.service');
      writeFileSync(copy, unitText.replaceAll('/usr/local/bin/byteor-agent', '/bin/true'));
      const result = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
      expect(result.stdout + result.stderr).toBe('');
      expect(result.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('packaging/install.sh', () => {
  it('carries the unit verbatim (curl | bash fetches one file)', () => {
    const embedded = /\n {2}cat <<'UNIT'\n([\s\S]*?)\nUNIT\n/.exec(installText)?.[1];
    expect(`${embedded}\n`).toBe(unitText);
  });

  it('is only function definitions, with main "$@" as its last line', () => {
    const lines = installText.replace(/\n$/, '').split('\n');
    expect(lines.at(-1)).toBe('main "$@"');
    let inFunction = false;
    const topLevel: string[] = [];
    for (const line of lines.slice(0, -1)) {
      if (inFunction) {
        if (line === '}') inFunction = false;
      } else if (/^[a-z_]+\(\) \{$/.test(line)) inFunction = true;
      else if (line !== '' && !line.startsWith('#')) topLevel.push(line);
    }
    expect(topLevel).toEqual([]);
    expect(inFunction).toBe(false);
    expect(installText).toMatch(/\nmain\(\) \{\n {2}set -euo pipefail\n/);
  });

  it('parses (bash -n)', () => {
    const result = spawnSync('bash', ['-n', INSTALL_SH], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it.skipIf(!commandExists('shellcheck'))('is shellcheck clean', () => {
    const result = spawnSync('shellcheck', [INSTALL_SH], { encoding: 'utf8' });
    expect(result.stdout).toBe('');
    expect(result.status).toBe(0);
  });
});
