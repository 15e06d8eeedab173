import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as dotenvParse } from 'dotenv';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli.js';
import { runEnroll, type EnrollOptions } from '../../src/commands/enroll.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { captureContext } from '../support/command-context.js';
import { runWithFakeTimeouts, useFakeTimeouts } from '../support/fake-timers.js';
import { parseSystemdEnvFile } from '../support/systemd-env.js';
import { tempDir } from '../support/tmp.js';

const { cp, baseUrl } = setupControlPlane();
afterEach(() => {
  vi.useRealTimers();
});

async function setup(): Promise<{ envFile: string; flags: EnrollOptions }> {
  const dir = await tempDir();
  const envFile = join(dir, 'agent.env');
  const env = cp.defaultEnvironment;
  return {
    envFile,
    flags: { config: envFile, apiBaseUrl: baseUrl, org: env.orgId, project: env.projectId, environment: env.environmentId, label: ['region=eu-west-1', 'rack=r12'] },
  };
}

function flagArgs(flags: EnrollOptions): string[] {
  return ['--config', flags.config!, '--api-base-url', flags.apiBaseUrl!, '--org', flags.org!, '--project', flags.project!, '--environment', flags.environment!];
}

async function readEnv(path: string): Promise<Record<string, string>> {
  const text = await readFile(path, 'utf8');
  // Whatever we write, systemd must read it the same way.
  expect(parseSystemdEnvFile(text)).toEqual(dotenvParse(text));
  return dotenvParse(text);
}

describe('byteor-agent enroll', () => {
  it('enrolls with host metadata, stores the identity 0600, and drops the token', async () => {
    const { envFile, flags } = await setup();
    const token = cp.issueEnrollmentToken();
    const c = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: token } });
    expect(await runEnroll({ ...flags, name: 'edge-node-01' }, c.ctx)).toBe(0);

    const values = await readEnv(envFile);
    const agents = cp.agents();
    expect(agents).toHaveLength(1);
    const agent = agents[0]!;
    expect(values).toMatchObject({
      BYTEOR_API_BASE_URL: baseUrl,
      BYTEOR_AGENT_ID: agent.agentId,
      BYTEOR_AGENT_API_KEY: agent.apiKey,
      BYTEOR_ORG_ID: cp.defaultEnvironment.orgId,
      BYTEOR_ENVIRONMENT_POSTURE: 'dev',
    });
    expect(values.BYTEOR_ENROLLMENT_TOKEN).toBeUndefined();
    expect(values.BYTEOR_ENROLLMENT_IDEMPOTENCY_KEY).toBeUndefined();
    expect((await stat(envFile)).mode & 0o777).toBe(0o600);
    expect(agent).toMatchObject({ name: 'edge-node-01', labels: { region: 'eu-west-1', rack: 'r12' }, arch: process.arch });
    expect(agent.os).toMatchObject({ platform: 'linux' });

    const request = cp.requestsTo('enroll')[0]!;
    expect(request.headers.authorization).toBe(`Bearer ${token}`);
    expect(request.headers['idempotency-key']).toMatch(/^[0-9a-f-]{36}$/);
    expect(request.headers['user-agent']).toMatch(/^byteor-agent\/\d+\.\d+\.\d+ \(node\/[\d.]+; linux; \w+\)$/);
    expect(c.stdout.join('\n')).toMatch(new RegExp(`Enrolled as ${agent.agentId} \\(edge-node-01\\)`));
    const everything = [c.stdout, c.stderr, c.logs.lines].flat().join('\n') + (await readFile(envFile, 'utf8'));
    expect(everything).not.toContain(token);
  });

  it('removes a token kept in the env file once enrolled', async () => {
    const { envFile, flags } = await setup();
    const token = cp.issueEnrollmentToken();
    await writeFile(envFile, `# provisioned by cloud-init\nBYTEOR_ENROLLMENT_TOKEN='${token}'\n`, { mode: 0o600 });
    const c = captureContext();
    expect(await runEnroll(flags, c.ctx)).toBe(0);
    const text = await readFile(envFile, 'utf8');
    expect(text).not.toContain(token);
    expect(text).toContain('# provisioned by cloud-init');
  });

  it('is a no-op when already enrolled: says as whom, makes no request', async () => {
    const { envFile, flags } = await setup();
    const c1 = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: cp.issueEnrollmentToken() } });
    await runEnroll(flags, c1.ctx);
    const before = await readFile(envFile, 'utf8');
    const requests = cp.requests.length;

    const c2 = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: cp.issueEnrollmentToken() } });
    expect(await runEnroll(flags, c2.ctx)).toBe(0);
    expect(c2.stdout.join('\n')).toMatch(/Already enrolled as agt_\w+ .*--force/);
    const c3 = captureContext();
    expect(await runEnroll({ ...flags, ifNeeded: true }, c3.ctx)).toBe(0);
    expect(c3.stdout).toEqual([]);
    expect(cp.requests.length).toBe(requests);
    expect(await readFile(envFile, 'utf8')).toBe(before);
  });

  it('--force re-enrolls with a new token and replaces the identity', async () => {
    const { envFile, flags } = await setup();
    await runEnroll(flags, captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: cp.issueEnrollmentToken() } }).ctx);
    const first = (await readEnv(envFile)).BYTEOR_AGENT_ID;
    expect(await runEnroll({ ...flags, force: true }, captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: cp.issueEnrollmentToken() } }).ctx)).toBe(0);
    const second = await readEnv(envFile);
    expect(second.BYTEOR_AGENT_ID).not.toBe(first);
    expect(cp.requestsTo('enroll')).toHaveLength(2);
  });

  it('refuses a reused token with exit 77 and says what to do', async () => {
    const { flags } = await setup();
    const token = cp.issueEnrollmentToken();
    await runEnroll(flags, captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: token } }).ctx);
    const other = await setup();
    const c = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: token } });
    expect(await runCli(['node', 'byteor-agent', 'enroll', '--config', other.envFile, '--api-base-url', baseUrl, '--org', flags.org!, '--project', flags.project!, '--environment', flags.environment!], c.ctx)).toBe(77);
    const message = c.stderr.join('\n');
    expect(message).toMatch(/401.*unknown, expired or already used.*create a new one/s);
    expect(message).not.toContain(token);
    expect(cp.agents()).toHaveLength(1);
  });

  it('explains 403: a token for another environment or without agent:enroll', async () => {
    const { flags } = await setup();
    const otherEnv = cp.createEnvironment();
    const c = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: cp.issueEnrollmentToken({ environmentId: otherEnv.environmentId }) } });
    expect(await runCli(['node', 'byteor-agent', 'enroll', '--config', flags.config!, '--api-base-url', baseUrl, '--org', flags.org!, '--project', flags.project!, '--environment', flags.environment!], c.ctx)).toBe(77);
    expect(c.stderr.join('\n')).toMatch(/403.*lacks the agent:enroll scope or belongs to another environment/s);

    const c2 = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: cp.issueEnrollmentToken({ scopes: ['agent:heartbeat'] }) } });
    expect(await runCli(['node', 'byteor-agent', 'enroll', '--config', flags.config!, '--api-base-url', baseUrl, '--org', flags.org!, '--project', flags.project!, '--environment', flags.environment!], c2.ctx)).toBe(77);
  });

  it('gets the same identity back when the response was lost after the server enrolled', async () => {
    const { envFile, flags } = await setup();
    const token = cp.issueEnrollmentToken();
    let calls = 0;
    const c = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: token } });
    // The server handles the first request; its answer never reaches us.
    c.ctx.fetch = async (input, init) => {
      calls += 1;
      const response = await globalThis.fetch(input, init);
      if (calls === 1) {
        await response.arrayBuffer();
        throw new TypeError('fetch failed', { cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }) });
      }
      return response;
    };
    useFakeTimeouts();
    expect((await runWithFakeTimeouts(runEnroll(flags, c.ctx))).result).toBe(0);
    const [first, second] = cp.requestsTo('enroll');
    expect(first!.status).toBe(201);
    expect(second!.status).toBe(201);
    expect(second!.headers['idempotency-key']).toBe(first!.headers['idempotency-key']);
    expect(cp.agents()).toHaveLength(1);
    expect((await readEnv(envFile)).BYTEOR_AGENT_ID).toBe(cp.agents()[0]!.agentId);
    expect(c.logs.records.some((r) => r.level === 'warn' && String(r.msg).includes('retrying'))).toBe(true);
    expect(c.logs.text()).not.toContain(token);
  });

  it('resumes the same enrollment from a new process after a crash (idempotency key kept in the env file)', async () => {
    const { envFile, flags } = await setup();
    const token = cp.issueEnrollmentToken();
    // First process: the server enrols, then the process is stopped before reading the answer.
    const c1 = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: token } });
    c1.ctx.fetch = async (input, init) => {
      await (await globalThis.fetch(input, init)).arrayBuffer();
      c1.controller.abort('SIGTERM');
      throw new DOMException('aborted', 'AbortError');
    };
    await expect(runEnroll(flags, c1.ctx)).rejects.toThrow(/aborted/);
    expect(cp.agents()).toHaveLength(1);
    expect(await readFile(envFile, 'utf8')).toMatch(/BYTEOR_ENROLLMENT_IDEMPOTENCY_KEY=/);

    const c2 = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: token } });
    expect(await runEnroll(flags, c2.ctx)).toBe(0);
    expect(cp.agents()).toHaveLength(1);
    expect((await readEnv(envFile)).BYTEOR_AGENT_ID).toBe(cp.agents()[0]!.agentId);
  });

  it('retries a throttled enrollment after Retry-After with the same key', async () => {
    const { flags } = await setup();
    cp.fault('enroll', { status: 429, retryAfter: '0' });
    cp.fault('enroll', { status: 503 });
    const c = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: cp.issueEnrollmentToken() } });
    useFakeTimeouts();
    const { result } = await runWithFakeTimeouts(runEnroll(flags, c.ctx));
    expect(result).toBe(0);
    const keys = cp.requestsTo('enroll').map((r) => r.headers['idempotency-key']);
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(1);
  });

  it('gives up on an unreachable control plane with exit 69, keeping the token usable', async () => {
    const { envFile, flags } = await setup();
    const token = cp.issueEnrollmentToken();
    cp.fault('enroll', { drop: true, times: Number.POSITIVE_INFINITY });
    const c = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: token } });
    useFakeTimeouts();
    const { result } = await runWithFakeTimeouts(runCli(['node', 'byteor-agent', 'enroll', ...flagArgs(flags)], c.ctx));
    expect(result).toBe(69);
    expect(c.stderr.join('\n')).toMatch(/could not enroll: .*run the same command again/s);
    // A bounded number of attempts, then a clear answer: no endless loop in an installer.
    expect(cp.requestsTo('enroll')).toHaveLength(6);
    expect(cp.enrollmentToken(token)?.usedAt).toBeUndefined();
    expect(await readFile(envFile, 'utf8')).toMatch(/BYTEOR_ENROLLMENT_IDEMPOTENCY_KEY=/);
  });

  it('needs a token from the environment, the env file or --token-file, never argv', async () => {
    const { flags } = await setup();
    const c = captureContext();
    expect(await runCli(['node', 'byteor-agent', 'enroll', '--config', flags.config!, '--api-base-url', baseUrl, '--org', 'o1', '--project', 'p1', '--environment', 'e1'], c.ctx)).toBe(78);
    expect(c.stderr.join('\n')).toMatch(/BYTEOR_ENROLLMENT_TOKEN is required to enroll .*never pass it as an argument/);
    const c2 = captureContext();
    expect(await runCli(['node', 'byteor-agent', 'enroll', '--token', 'abc'], c2.ctx)).toBe(64);
  });

  it('reads the token from --token-file - (standard input)', async () => {
    const { envFile, flags } = await setup();
    const token = cp.issueEnrollmentToken();
    const c = captureContext({ stdin: `${token}\n` });
    expect(await runEnroll({ ...flags, tokenFile: '-' }, c.ctx)).toBe(0);
    expect((await readEnv(envFile)).BYTEOR_AGENT_ID).toMatch(/^agt_/);
  });

  it('names the missing enrollment target and exits 78 before any request', async () => {
    const { flags } = await setup();
    const c = captureContext({ env: { BYTEOR_ENROLLMENT_TOKEN: cp.issueEnrollmentToken() } });
    expect(await runCli(['node', 'byteor-agent', 'enroll', '--config', flags.config!, '--api-base-url', baseUrl, '--org', 'o1'], c.ctx)).toBe(78);
    expect(c.stderr.join('\n')).toMatch(/BYTEOR_PROJECT_ID is required to enroll .*--project/);
    expect(cp.requests).toHaveLength(0);
  });
});
