import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import type { CheckResult } from '../../src/commands/doctor/check.js';
import type { RunCommand } from '../../src/commands/doctor/host.js';
import { runDoctor, type DoctorDeps } from '../../src/commands/doctor.js';
import { setupControlPlane } from '../control-plane/index.js';
import { captureContext } from '../support/command-context.js';
import { tempDir } from '../support/tmp.js';

// The whole command against the in-process fake (msw); http:// to loopback, so DNS and TLS are notes.
const { cp, baseUrl } = setupControlPlane({ baseUrl: 'http://127.0.0.1:7070' });

const active: RunCommand = async () => ({ code: 0, stdout: 'active\n', stderr: '' });
const deps: DoctorDeps = { runCommand: active, serviceAccount: async () => undefined, euid: process.geteuid?.() };

interface Host {
  envFile: string;
  stateDir: string;
  agentId: string;
  apiKey: string;
}

async function host(options: { envText?: (agent: { agentId: string; apiKey: string }, stateDir: string) => string; scopes?: string[]; running?: boolean } = {}): Promise<Host> {
  const agent = cp.createAgent(options.scopes === undefined ? {} : { scopes: options.scopes });
  const dir = await tempDir();
  const stateDir = join(dir, 'state');
  await mkdir(stateDir);
  const envFile = join(dir, 'agent.env');
  const text =
    options.envText?.(agent, stateDir) ??
    `BYTEOR_API_BASE_URL='${baseUrl}'\nBYTEOR_AGENT_ID='${agent.agentId}'\nBYTEOR_AGENT_API_KEY='${agent.apiKey}'\nBYTEOR_STATE_DIR='${stateDir}'\n`;
  await writeFile(envFile, text);
  await chmod(envFile, 0o600);
  await writeFile(join(stateDir, 'state.json'), JSON.stringify({ version: 1, heartbeat: { sequence: 7 }, etags: { deployment: '"d-1"', signing_keys: null } }));
  if (options.running !== false) {
    const now = Date.now();
    await writeFile(
      join(stateDir, 'status.json'),
      JSON.stringify({
        schema: 1,
        agent_id: agent.agentId,
        state: 'healthy',
        pid: 1,
        started_at: new Date(now - 600_000).toISOString(),
        updated_at: new Date(now - 2_000).toISOString(),
        heartbeat: { last_success_at: new Date(now - 2_000).toISOString(), last_error: null, sequence: 7, interval_seconds: 30, consecutive_failures: 0 },
        problems: [],
      }),
    );
  }
  return { envFile, stateDir, ...agent };
}

async function doctor(h: Host, extra: DoctorDeps = {}): Promise<{ code: number; results: CheckResult[]; text: string }> {
  const c = captureContext({ env: {} });
  const code = await runDoctor({ config: h.envFile, json: true }, c.ctx, { ...deps, ...extra });
  const text = c.stdout.join('\n');
  return { code, results: JSON.parse(text) as CheckResult[], text };
}

describe('byteor-agent doctor', () => {
  it('passes every check on a healthy host and exits 0', async () => {
    const h = await host();
    const { code, results } = await doctor(h);
    // Free space is this machine's; every other line is arranged by the test.
    expect(results.filter((r) => r.status !== 'pass' && r.name !== 'disk space')).toEqual([]);
    expect(results.map((r) => r.name)).toEqual([
      'env file',
      'env file owner',
      'env file mode',
      'env file syntax',
      'env file quoting',
      'configuration',
      'proxy',
      'DNS',
      'TLS',
      'control plane',
      'clock',
      'runtime key',
      'scope agent:deployment_read',
      'scope agent:signing_keys_read',
      'scope agent:heartbeat',
      'scope agent:artifact_upload',
      'state directory',
      'disk space',
      'outbox',
      'outbox rejected',
      'systemd unit',
    ]);
    expect(code).toBe(0);
  });

  it('changes nothing: only GETs reach the control plane, and the state directory is as it was', async () => {
    const h = await host();
    const before = { files: (await readdir(h.stateDir)).sort(), state: await readFile(join(h.stateDir, 'state.json'), 'utf8'), mtime: (await stat(join(h.stateDir, 'state.json'))).mtimeMs };
    await doctor(h);
    expect(new Set(cp.requests.map((r) => `${r.method} ${r.route}`))).toEqual(new Set(['GET readyz', 'GET deployment', 'GET signing-keys']));
    expect(cp.requestsTo('deployment')[0]?.headers['if-none-match']).toBe('"d-1"');
    expect(cp.heartbeats).toHaveLength(0);
    expect((await readdir(h.stateDir)).sort()).toEqual(before.files);
    expect(await readFile(join(h.stateDir, 'state.json'), 'utf8')).toBe(before.state);
    expect((await stat(join(h.stateDir, 'state.json'))).mtimeMs).toBe(before.mtime);
  });

  it('exits 1 and names the fix when the key is revoked, never printing the key', async () => {
    const h = await host();
    cp.revokeAgentKey(h.agentId);
    const { code, results, text } = await doctor(h);
    expect(code).toBe(1);
    expect(results.find((r) => r.name === 'runtime key')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/enroll --force/) as unknown });
    expect(text).not.toContain(h.apiKey);
  });

  it('exits 1 for a missing scope, naming it', async () => {
    const h = await host({ scopes: ['agent:heartbeat', 'agent:deployment_read', 'agent:artifact_upload'] });
    const { code, results } = await doctor(h);
    expect(code).toBe(1);
    expect(results.find((r) => r.name === 'scope agent:signing_keys_read')?.status).toBe('fail');
    expect(results.find((r) => r.name === 'runtime key')?.status).toBe('pass');
  });

  it('reports invalid configuration with its fix and skips what needs it, without any request', async () => {
    const h = await host({ envText: (a) => `BYTEOR_API_BASE_URL='ftp://api.byteor.test'\nBYTEOR_AGENT_ID='${a.agentId}'\n` });
    const c = captureContext({ env: {} });
    const code = await runDoctor({ config: h.envFile }, c.ctx, deps);
    expect(code).toBe(1);
    const text = c.stdout.join('\n');
    expect(text).toMatch(/^FAIL {2}configuration +invalid configuration: BYTEOR_API_BASE_URL uses ftp:\/\/; only https:\/\/ is supported .* → fix: use the https:\/\/ API origin/m);
    expect(text).toMatch(/network, key and state checks were not run: fix the configuration first$/);
    expect(cp.requests).toHaveLength(0);
  });

  it('fails an unenrolled host with the enroll command', async () => {
    const h = await host({ envText: (_a, stateDir) => `BYTEOR_API_BASE_URL='${baseUrl}'\nBYTEOR_STATE_DIR='${stateDir}'\n`, running: false });
    const { code, results } = await doctor(h);
    expect(code).toBe(1);
    expect(results.find((r) => r.name === 'configuration')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/byteor-agent enroll/) as unknown });
  });

  it('fails an unreachable control plane and skips the key check it would need', async () => {
    const h = await host();
    cp.outage(true);
    const { code, results } = await doctor(h);
    expect(code).toBe(1);
    expect(results.find((r) => r.name === 'control plane')?.status).toBe('fail');
    expect(results.some((r) => r.name === 'runtime key' || r.name === 'clock')).toBe(false);
  });

  it('prints one line per check for humans, each problem with its fix, and a summary', async () => {
    const h = await host({ running: false });
    const c = captureContext({ env: {} });
    await runDoctor({ config: h.envFile }, c.ctx, { ...deps, runCommand: async () => ({ code: 3, stdout: 'inactive\n', stderr: '' }) });
    const lines = c.stdout.join('\n').split('\n');
    expect(lines).toContainEqual(expect.stringMatching(/^PASS {2}control plane +http:\/\/127\.0\.0\.1:7070\/readyz answered 200 in \d+ ms$/));
    expect(lines).toContainEqual(expect.stringMatching(/^WARN {2}scopes agent:heartbeat, agent:artifact_upload +unknown: the agent has not run yet .* → fix: start the agent/));
    expect(lines).toContainEqual(expect.stringMatching(/^FAIL {2}systemd unit +byteor-agent\.service is not running → fix: systemctl enable --now byteor-agent$/));
    expect(lines.at(-1)).toMatch(/^1 failed, 1 warning\(s\), \d+ passed$/);
  });

  it('is a CLI command: doctor --json prints an array of {name, status, detail}', async () => {
    const h = await host();
    const c = captureContext({ env: {} });
    await runCli(['node', 'byteor-agent', 'doctor', '--json', '--config', h.envFile], c.ctx);
    const results = JSON.parse(c.stdout.join('\n')) as CheckResult[];
    expect(results.find((r) => r.name === 'runtime key')).toEqual({ name: 'runtime key', status: 'pass', detail: expect.stringContaining(h.agentId) as unknown });
  });
});
