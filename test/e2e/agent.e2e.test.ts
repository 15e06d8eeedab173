import { spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as dotenvParse } from 'dotenv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/tmp.js';
import { AGENT_BUNDLE, childEnv, eventually, requireBuiltAgent, runAgent, startControlPlaneProcess, type ControlPlaneProcess } from './processes.js';

let cp: ControlPlaneProcess;

beforeAll(async () => {
  requireBuiltAgent();
  cp = await startControlPlaneProcess();
});
afterAll(async () => {
  await cp?.stop();
});

describe('the built agent against the control plane over real HTTP', () => {
  it('enrolls, runs, heartbeats, and stops cleanly on SIGTERM', async () => {
    const dir = await tempDir();
    const envFile = join(dir, 'agent.env');
    const stateDir = join(dir, 'state');
    const { info } = cp;

    const enroll = await runAgent(
      ['enroll', '--config', envFile, '--state-dir', stateDir, '--api-base-url', info.baseUrl, '--org', info.orgId, '--project', info.projectId, '--environment', info.environmentId, '--name', 'e2e-node', '--label', 'suite=e2e'],
      childEnv({ BYTEOR_ENROLLMENT_TOKEN: info.enrollmentToken }),
    );
    expect(enroll.stderr).toBe('');
    expect(enroll.code).toBe(0);
    expect(enroll.stdout).toMatch(/Enrolled as agt_\w+ \(e2e-node\)/);
    const values = dotenvParse(await readFile(envFile, 'utf8'));
    expect(values.BYTEOR_AGENT_ID).toMatch(/^agt_/);
    expect(values.BYTEOR_ENROLLMENT_TOKEN).toBeUndefined();
    expect((await stat(envFile)).mode & 0o777).toBe(0o600);
    const agentId = values.BYTEOR_AGENT_ID!;
    const apiKey = values.BYTEOR_AGENT_API_KEY!;

    const again = await runAgent(['enroll', '--config', envFile], childEnv({ BYTEOR_ENROLLMENT_TOKEN: info.enrollmentToken }));
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/Already enrolled as/);

    const child = spawn(process.execPath, [AGENT_BUNDLE, 'run', '--config', envFile, '--state-dir', stateDir, '--dev-heartbeat-interval', '1'], {
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

    const heartbeats = await eventually(
      async () => {
        const list = await cp.admin<{ agentId: string; body: { sequence: number } }[]>('heartbeats');
        const mine = list.filter((hb) => hb.agentId === agentId);
        return mine.length >= 3 ? mine : undefined;
      },
      15_000,
      'three heartbeats',
    );
    expect(heartbeats.map((hb) => hb.body.sequence).slice(0, 3)).toEqual([1, 2, 3]);

    const t0 = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);

    const lines = stdout.trim().split('\n');
    for (const line of lines) expect(() => JSON.parse(line) as unknown, line).not.toThrow();
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(expect.arrayContaining([expect.stringMatching(/starting as agt_/), 'shutting down', 'stopped']));
    for (const text of [stdout, stderr, enroll.stdout, enroll.stderr]) {
      expect(text).not.toContain(apiKey);
      expect(text).not.toContain(info.enrollmentToken);
    }

    const status = await runAgent(['status', '--json', '--config', envFile, '--state-dir', stateDir], childEnv());
    expect(status.code).toBe(3);
    expect(JSON.parse(status.stdout)).toMatchObject({ agent_id: agentId, state: 'stopped' });
  });
});
