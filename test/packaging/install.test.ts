/**
 * packaging/install.sh end to end: bash runs the real script against a temporary root and the
 * fake control plane over real HTTP (which also serves the release: the agent bundle as
 * byteor-agent-linux-x64, and SHA256SUMS). Needs `npm run build` (dist/byteor-agent.cjs).
 * BYTEOR_TEST_RELEASE_BINARY=dist/byteor-agent-linux-x64 runs it with the standalone binary.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Downloads } from '../control-plane/downloads.js';
import { startControlPlaneServer, type ControlPlaneServer } from '../control-plane/http-server.js';
import {
  BINARY_NAME,
  RELEASE_BINARY,
  INSTALL_SH,
  UNIT_FILE,
  commandExists,
  filesContaining,
  listTree,
  makeHost,
  makeRelease,
  rebuiltBinary,
  runInstaller,
  sha256,
  straceWorks,
  type AgentMode,
  type Host,
  type Release,
} from './harness.js';

let server: ControlPlaneServer;
let downloads: Downloads;
let release: Release;
let releaseRoot: string;
const hosts: Host[] = [];

beforeAll(async () => {
  if (!existsSync(RELEASE_BINARY)) throw new Error(`${RELEASE_BINARY} is missing: run \`npm run build\` first (npm test does)`);
  const scratch = await makeHost({ systemd: false });
  hosts.push(scratch);
  releaseRoot = join(scratch.fakeDir, 'release');
  release = await makeRelease(releaseRoot, await readFile(RELEASE_BINARY));
  downloads = new Downloads({ dir: releaseRoot });
  server = await startControlPlaneServer({ downloads });
});

afterAll(async () => {
  await Promise.all(hosts.splice(0).map((host) => host.remove()));
  await server?.close();
});

afterEach(async () => {
  // Stop the agents the fake systemctl started, remove the roots (all but the release's).
  await Promise.all(hosts.splice(1).map((host) => host.remove()));
  // Each test leaves the release as it found it: served from its directory.
  delete downloads.files.SHA256SUMS;
  delete downloads.files[BINARY_NAME];
});

function downloadBaseUrl(): string {
  return `${server.baseUrl}/downloads`;
}

async function newHost(options: { systemd?: boolean; agentMode?: AgentMode } = {}): Promise<Host> {
  const host = await makeHost({ ...options, downloadBaseUrl: downloadBaseUrl() });
  hosts.push(host);
  return host;
}

function enrollmentArgs(name = 'edge-01'): string[] {
  const env = server.cp.defaultEnvironment;
  return ['--api-base-url', server.baseUrl, '--org', env.orgId, '--project', env.projectId, '--environment', env.environmentId, '--name', name, '--label', 'region=eu-west-1', '--label', 'rack=r12', '--wait', '30'];
}

function envValue(text: string, key: string): string | undefined {
  return new RegExp(`^${key}='([^']*)'$`, 'm').exec(text)?.[1];
}

function enrollRequests(): number {
  return server.cp.requestsTo('enroll').length;
}

async function installFresh(host: Host, name = 'edge-01'): Promise<{ token: string; agentId: string; apiKey: string }> {
  const token = server.cp.issueEnrollmentToken();
  const result = await runInstaller(host, enrollmentArgs(name), { env: { BYTEOR_ENROLLMENT_TOKEN: token } });
  expect(result.stderr).toBe('');
  expect(result.code, result.stdout).toBe(0);
  const envText = await readFile(join(host.root, 'etc/byteor/agent.env'), 'utf8');
  return { token, agentId: envValue(envText, 'BYTEOR_AGENT_ID') ?? '', apiKey: envValue(envText, 'BYTEOR_AGENT_API_KEY') ?? '' };
}

describe('install.sh: fresh install', () => {
  it('downloads and verifies the binary, creates the user, env file and unit, enrolls once, starts the service and sees a heartbeat', async () => {
    const host = await newHost();
    const before = enrollRequests();
    const token = server.cp.issueEnrollmentToken();

    const result = await runInstaller(host, enrollmentArgs(), { env: { BYTEOR_ENROLLMENT_TOKEN: token } });

    expect(result.code, `${result.stdout}\n${result.stderr}\n${await host.agentLog()}`).toBe(0);
    expect(result.stdout).toContain('Checksum verified');
    expect(result.stdout).toContain('byteor-agent is installed, enrolled and sending heartbeats.');

    const binary = join(host.root, 'usr/local/bin/byteor-agent');
    expect(sha256(await readFile(binary))).toBe(sha256(release.binary));
    expect((await stat(binary)).mode & 0o777).toBe(0o755);

    const unit = join(host.root, 'etc/systemd/system/byteor-agent.service');
    expect(await readFile(unit, 'utf8')).toBe(await readFile(UNIT_FILE, 'utf8'));
    expect((await stat(unit)).mode & 0o777).toBe(0o644);

    const envFile = join(host.root, 'etc/byteor/agent.env');
    expect((await stat(envFile)).mode & 0o777).toBe(0o640);
    const envText = await readFile(envFile, 'utf8');
    const agentId = envValue(envText, 'BYTEOR_AGENT_ID');
    expect(agentId).toMatch(/^agt_/);
    expect(envValue(envText, 'BYTEOR_AGENT_API_KEY')).toBeDefined();
    expect(envValue(envText, 'BYTEOR_API_BASE_URL')).toBe(server.baseUrl);
    expect(envText).not.toContain('BYTEOR_ENROLLMENT_TOKEN');

    expect(enrollRequests()).toBe(before + 1);
    const agent = server.cp.agent(agentId ?? '');
    expect(agent.name).toBe('edge-01');
    expect(agent.labels).toEqual({ region: 'eu-west-1', rack: 'r12' });
    expect(server.cp.heartbeatsOf(agentId ?? '').length).toBeGreaterThan(0);

    expect(await host.calls()).toEqual([
      'groupadd --system byteor-agent',
      expect.stringMatching(/^useradd --system --gid byteor-agent --no-create-home --home-dir \/var\/lib\/byteor-agent --shell \S+ --comment ByteOr Cloud agent byteor-agent$/),
      `chown root:byteor-agent ${envFile}`,
      'systemctl daemon-reload',
      'systemctl enable byteor-agent.service',
      'systemctl restart byteor-agent.service',
    ]);
    expect(downloads.requests.slice(-2).map((r) => [r.name, r.status])).toEqual([
      ['SHA256SUMS', 200],
      [BINARY_NAME, 200],
    ]);
  });

  it('never puts the token in an argv, a file or the output (every execve traced)', async (ctx) => {
    if (!straceWorks()) ctx.skip('strace is not available here (CI installs it)');
    // `once`: the fake service runs one pass and exits, so strace, which follows it, ends too.
    const host = await newHost({ agentMode: 'once' });
    const token = server.cp.issueEnrollmentToken();
    const trace = join(host.fakeDir, 'execve.trace');

    const result = await runInstaller(host, enrollmentArgs(), { env: { BYTEOR_ENROLLMENT_TOKEN: token }, straceTo: trace });

    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    const execs = await readFile(trace, 'utf8');
    // The trace did see the children, with their argv: enroll, curl, sha256sum, systemctl, run.
    expect(execs).toMatch(/execve\("[^"]*byteor-agent", \["[^"]*byteor-agent", "enroll", "--config"/);
    expect(execs).toMatch(/execve\("[^"]*curl"/);
    expect(execs).toMatch(/"run", "--once"/);
    expect(execs).not.toContain(token);
    expect(result.stdout).not.toContain(token);
    expect(result.stderr).not.toContain(token);
    expect(await filesContaining(host.root, token)).toEqual([]);
    expect(await filesContaining(host.fakeDir, token)).toEqual([]);
  });

  it('reads the token from --token-file into memory only', async () => {
    const host = await newHost();
    const token = server.cp.issueEnrollmentToken();
    const tokenFile = join(host.fakeDir, 'token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });

    const result = await runInstaller(host, [...enrollmentArgs(), '--token-file', tokenFile]);

    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(await filesContaining(host.root, token)).toEqual([]);
    expect(`${result.stdout}${result.stderr}`).not.toContain(token);
  });
});

describe('install.sh: re-runs', () => {
  it('keeps the identity, needs no token, makes no enrollment request, refreshes binary and unit', async () => {
    const host = await newHost();
    const first = await installFresh(host);
    const enrollsBefore = enrollRequests();
    // A new release of the binary, and a unit somebody edited by hand.
    const rebuilt = await rebuiltBinary('release 2');
    downloads.files[BINARY_NAME] = rebuilt;
    downloads.files.SHA256SUMS = Buffer.from(`${sha256(rebuilt)}  ${BINARY_NAME}\n`);
    await writeFile(join(host.root, 'etc/systemd/system/byteor-agent.service'), '[Service]\nExecStart=/bin/false\n');
    const callsBefore = (await host.calls()).length;

    const result = await runInstaller(host, ['--wait', '30']);

    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain(`This host is enrolled as ${first.agentId}`);
    expect(enrollRequests()).toBe(enrollsBefore);
    const envText = await readFile(join(host.root, 'etc/byteor/agent.env'), 'utf8');
    expect(envValue(envText, 'BYTEOR_AGENT_ID')).toBe(first.agentId);
    expect(envValue(envText, 'BYTEOR_AGENT_API_KEY')).toBe(first.apiKey);
    expect(sha256(await readFile(join(host.root, 'usr/local/bin/byteor-agent')))).toBe(sha256(rebuilt));
    expect(await readFile(join(host.root, 'etc/systemd/system/byteor-agent.service'), 'utf8')).toBe(await readFile(UNIT_FILE, 'utf8'));
    // The user exists already: no useradd/groupadd this time; the service is restarted.
    expect((await host.calls()).slice(callsBefore)).toEqual([
      `chown root:byteor-agent ${join(host.root, 'etc/byteor/agent.env')}`,
      'systemctl daemon-reload',
      'systemctl enable byteor-agent.service',
      'systemctl restart byteor-agent.service',
    ]);
  });

  it('after the upgrade restart, a first heartbeat spread over a long advised interval is no failure', async () => {
    // The agent spreads its first heartbeat after a restart over one interval (fleet protection).
    const host = await newHost({ agentMode: 'advised' });
    const defaultInterval = server.cp.state.heartbeatIntervalSeconds;
    server.cp.setHeartbeatInterval(3600);
    try {
      await installFresh(host);
      const result = await runInstaller(host, ['--wait', '2']);

      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
      // Almost always the spread message; a heartbeat that happens to land within 2 s is fine too.
      expect(result.stdout).toMatch(/first heartbeat is spread over up to one heartbeat interval \(3600s\)|sending heartbeats/);
    } finally {
      server.cp.setHeartbeatInterval(defaultInterval);
    }
  });

  it('--force re-enrolls with a new token: exactly one enrollment request, a new identity', async () => {
    const host = await newHost();
    const first = await installFresh(host);
    const enrollsBefore = enrollRequests();
    const token = server.cp.issueEnrollmentToken();

    const result = await runInstaller(host, ['--force', '--wait', '30'], { env: { BYTEOR_ENROLLMENT_TOKEN: token } });

    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(enrollRequests()).toBe(enrollsBefore + 1);
    const envText = await readFile(join(host.root, 'etc/byteor/agent.env'), 'utf8');
    const agentId = envValue(envText, 'BYTEOR_AGENT_ID');
    expect(agentId).toMatch(/^agt_/);
    expect(agentId).not.toBe(first.agentId);
    expect(envValue(envText, 'BYTEOR_AGENT_API_KEY')).not.toBe(first.apiKey);
    expect((await stat(join(host.root, 'etc/byteor/agent.env'))).mode & 0o777).toBe(0o640);
  });

  it('--force without a token stops before changing anything', async () => {
    const host = await newHost();
    await installFresh(host);
    // The running agent rewrites its state files; stop it for a stable picture of the root.
    await host.stopAgent();
    const tree = await listTree(host.root);
    const callsBefore = (await host.calls()).length;
    const enrollsBefore = enrollRequests();

    const result = await runInstaller(host, ['--force']);

    expect(result.code).toBe(64);
    expect(result.stderr).toContain('no enrollment token');
    expect(result.stderr).toContain('Nothing was changed.');
    expect(await listTree(host.root)).toEqual(tree);
    expect((await host.calls()).length).toBe(callsBefore);
    expect(enrollRequests()).toBe(enrollsBefore);
  });
});

describe('install.sh: refusals that change nothing', () => {
  async function expectUntouched(host: Host, treeBefore: string[], enrollsBefore: number): Promise<void> {
    expect(await listTree(host.root)).toEqual(treeBefore);
    expect(await host.calls()).toEqual([]);
    expect(enrollRequests()).toBe(enrollsBefore);
  }

  it('a wrong checksum aborts before anything is installed', async () => {
    const host = await newHost();
    const tree = await listTree(host.root);
    const enrolls = enrollRequests();
    downloads.files.SHA256SUMS = Buffer.from(`${'0'.repeat(64)}  ${BINARY_NAME}\n`);

    const result = await runInstaller(host, enrollmentArgs(), { env: { BYTEOR_ENROLLMENT_TOKEN: server.cp.issueEnrollmentToken() } });

    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`checksum mismatch for ${BINARY_NAME}: expected ${'0'.repeat(64)}, got ${sha256(release.binary)}`);
    expect(result.stderr).toContain('nothing was installed');
    await expectUntouched(host, tree, enrolls);
  });

  it('a corrupted download (same SHA256SUMS, other bytes) aborts before anything is installed', async () => {
    const host = await newHost();
    const tree = await listTree(host.root);
    const enrolls = enrollRequests();
    downloads.files[BINARY_NAME] = release.binary.subarray(0, release.binary.length - 100);

    const result = await runInstaller(host, enrollmentArgs(), { env: { BYTEOR_ENROLLMENT_TOKEN: server.cp.issueEnrollmentToken() } });

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('checksum mismatch');
    await expectUntouched(host, tree, enrolls);
  });

  it('a fresh install without a token stops before downloading', async () => {
    const host = await newHost();
    const tree = await listTree(host.root);
    const enrolls = enrollRequests();
    const downloadsBefore = downloads.requests.length;

    const result = await runInstaller(host, enrollmentArgs());

    expect(result.code).toBe(64);
    expect(result.stderr).toContain('no enrollment token');
    expect(downloads.requests.length).toBe(downloadsBefore);
    await expectUntouched(host, tree, enrolls);
  });

  it.skipIf(process.getuid?.() !== 0 || !commandExists('setpriv'))('tells a non-root user to use sudo', async () => {
    // The real root (/), as an unprivileged user: the root check comes first, so nothing is touched.
    const host = await newHost();
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const env = { ...host.env, BYTEOR_INSTALL_ROOT: '' };
      const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', INSTALL_SH, ...enrollmentArgs()], { env, cwd: '/', stdio: ['ignore', 'ignore', 'pipe'], detached: true });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('this installer must run as root');
    expect(result.stderr).toContain('sudo');
    expect(await host.calls()).toEqual([]);
  });

  it('refuses the token as an argument', async () => {
    const host = await newHost();
    const result = await runInstaller(host, [...enrollmentArgs(), '--token', 'bet_whatever']);
    expect(result.code).toBe(64);
    expect(result.stderr).toContain('never pass the enrollment token as an argument');
    expect(await host.calls()).toEqual([]);
  });

  it('says so and stops when systemd is not running', async () => {
    const host = await newHost({ systemd: false });
    const tree = await listTree(host.root);
    const enrolls = enrollRequests();

    const result = await runInstaller(host, enrollmentArgs(), { env: { BYTEOR_ENROLLMENT_TOKEN: server.cp.issueEnrollmentToken() } });

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('systemd is not running on this host');
    await expectUntouched(host, tree, enrolls);
  });

  it('a refused token (401) stops after installing, before enabling or starting the service', async () => {
    const host = await newHost();
    const result = await runInstaller(host, enrollmentArgs(), { env: { BYTEOR_ENROLLMENT_TOKEN: 'bet_not_a_real_token_000' } });

    expect(result.code).toBe(77);
    expect(result.stderr).toContain('enrollment refused (401)');
    expect(result.stderr).toContain('installed but not enrolled and not started');
    const calls = await host.calls();
    expect(calls).not.toContain('systemctl enable byteor-agent.service');
    expect(calls.some((call) => call.startsWith('systemctl restart'))).toBe(false);
  });

  it('reports what failed and where to look when no heartbeat comes', async () => {
    // The fake service does not start the agent: status --wait runs out.
    const host = await newHost({ agentMode: 'none' });
    const token = server.cp.issueEnrollmentToken();
    const result = await runInstaller(host, [...enrollmentArgs().slice(0, -2), '--wait', '2'], { env: { BYTEOR_ENROLLMENT_TOKEN: token } });

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no successful heartbeat within 2 s');
    expect(result.stderr).toContain('journalctl -u byteor-agent');
  });
});

describe('install.sh: a truncated download runs nothing', () => {
  it.each([0.05, 0.25, 0.5, 0.75, 0.95])('cut at %f of its length', async (fraction) => {
    const script = await readFile(INSTALL_SH, 'utf8');
    await expectTruncatedRunsNothing(script.slice(0, Math.floor(script.length * fraction)));
  });

  it.each([
    ['right before the last line', 'main "$@"\n'],
    ['inside the last line', '$@"\n'],
    ['inside the embedded unit', 'ExecStart=/usr/local/bin/byteor-agent run'],
  ])('cut %s', async (_where, cutBefore) => {
    const script = await readFile(INSTALL_SH, 'utf8');
    const at = script.lastIndexOf(cutBefore);
    expect(at).toBeGreaterThan(0);
    await expectTruncatedRunsNothing(script.slice(0, at));
  });

  async function expectTruncatedRunsNothing(text: string): Promise<void> {
    const host = await newHost();
    const script = join(host.fakeDir, 'install-truncated.sh');
    await writeFile(script, text);
    const tree = await listTree(host.root);
    const enrolls = enrollRequests();
    const downloadsBefore = downloads.requests.length;

    const result = await runInstaller(host, enrollmentArgs(), { script, env: { BYTEOR_ENROLLMENT_TOKEN: server.cp.issueEnrollmentToken() } });

    // A syntax error (exit 2) or a clean exit having only defined functions; nothing else.
    expect([0, 2]).toContain(result.code);
    expect(result.stdout).toBe('');
    expect(await listTree(host.root)).toEqual(tree);
    expect(await host.calls()).toEqual([]);
    expect(downloads.requests.length).toBe(downloadsBefore);
    expect(enrollRequests()).toBe(enrolls);
  }
});

describe('install.sh --uninstall', () => {
  it('stops and removes service and binary, keeps identity and state; a re-install reuses them; --purge removes all', async () => {
    const host = await newHost();
    const first = await installFresh(host);
    const envFile = join(host.root, 'etc/byteor/agent.env');
    const stateDir = join(host.root, 'var/lib/byteor-agent');
    const callsBefore = (await host.calls()).length;

    const removed = await runInstaller(host, ['--uninstall']);

    expect(removed.code, removed.stderr).toBe(0);
    expect(existsSync(join(host.root, 'etc/systemd/system/byteor-agent.service'))).toBe(false);
    expect(existsSync(join(host.root, 'usr/local/bin/byteor-agent'))).toBe(false);
    expect(existsSync(envFile)).toBe(true);
    expect(existsSync(join(stateDir, 'status.json'))).toBe(true);
    expect(removed.stdout).toContain('Remove them with --uninstall --purge');
    expect((await host.calls()).slice(callsBefore)).toEqual([
      'systemctl disable --now byteor-agent.service',
      'systemctl daemon-reload',
      'systemctl reset-failed byteor-agent.service',
    ]);

    // Installing again finds the identity: no token, no enrollment.
    const enrolls = enrollRequests();
    const again = await runInstaller(host, ['--wait', '30']);
    expect(again.code, again.stderr).toBe(0);
    expect(enrollRequests()).toBe(enrolls);
    expect(envValue(await readFile(envFile, 'utf8'), 'BYTEOR_AGENT_ID')).toBe(first.agentId);

    const purged = await runInstaller(host, ['--uninstall', '--purge']);
    expect(purged.code, purged.stderr).toBe(0);
    expect(await listTree(join(host.root))).toEqual(['etc/', 'etc/group', 'etc/passwd', 'etc/systemd/', 'etc/systemd/system/', 'run/', 'run/systemd/', 'run/systemd/system/', 'usr/', 'usr/local/', 'usr/local/bin/', 'var/', 'var/lib/']);
    const calls = await host.calls();
    expect(calls).toContain('userdel byteor-agent');
    expect(calls).toContain('groupdel byteor-agent');
    expect(await readFile(join(host.root, 'etc/passwd'), 'utf8')).not.toContain('byteor-agent');
  });

  it('is a no-op on a host without the agent', async () => {
    const host = await newHost();
    const result = await runInstaller(host, ['--uninstall']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('the service is not installed');
    expect(await host.calls()).toEqual([]);
  });
});

describe('install.sh: usage', () => {
  it('--help lists the inputs, the options and the exit codes', async () => {
    const host = await newHost();
    const result = await runInstaller(host, ['--help']);
    expect(result.code).toBe(0);
    for (const word of ['--api-base-url', '--org', '--project', '--environment', '--name', '--label', '--token-file', '--force', '--download-base-url', '--binary', '--wait', '--uninstall', '--purge', 'BYTEOR_ENROLLMENT_TOKEN', 'BYTEOR_DOWNLOAD_BASE_URL', 'BYTEOR_INSTALL_ROOT', 'BYTEOR_SYSTEMCTL']) {
      expect(result.stdout).toContain(word);
    }
  });

  it('installs a local --binary without downloading', async () => {
    const host = await newHost();
    const local = join(host.fakeDir, 'byteor-agent');
    await mkdir(host.fakeDir, { recursive: true });
    await writeFile(local, release.binary, { mode: 0o755 });
    const downloadsBefore = downloads.requests.length;
    const token = server.cp.issueEnrollmentToken();

    const result = await runInstaller(host, [...enrollmentArgs(), '--binary', local], { env: { BYTEOR_ENROLLMENT_TOKEN: token, BYTEOR_DOWNLOAD_BASE_URL: '' } });

    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toContain(`Using the local binary ${local}`);
    expect(downloads.requests.length).toBe(downloadsBefore);
  });

  it('refuses a plain-http download URL that is not loopback', async () => {
    const host = await newHost();
    const result = await runInstaller(host, enrollmentArgs(), { env: { BYTEOR_ENROLLMENT_TOKEN: server.cp.issueEnrollmentToken(), BYTEOR_DOWNLOAD_BASE_URL: 'http://downloads.example.com/agent' } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('must be an https:// URL');
    expect(await host.calls()).toEqual([]);
  });
});
