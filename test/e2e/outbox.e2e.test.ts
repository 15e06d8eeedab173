import { spawn } from 'node:child_process';
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packDirectory } from '../../src/archive/pack.js';
import { tempDir } from '../support/tmp.js';
import { leftovers, pending, writeContent } from '../outbox/helpers.js';
import { AGENT_BUNDLE, childEnv, eventually, requireBuiltAgent, startControlPlaneProcess, type ControlPlaneProcess } from './processes.js';

let cp: ControlPlaneProcess;

beforeAll(async () => {
  requireBuiltAgent();
  cp = await startControlPlaneProcess();
});
afterAll(async () => {
  await cp?.stop();
});

interface ArtifactRecord {
  agentId: string;
  type: string;
  sha256: string;
  sizeBytes: number;
  filename: string;
}
interface RequestRecord {
  route: string;
  status: number;
  at: number;
}

describe('the built agent uploads what is dropped into its outbox', () => {
  it('delivers three incident directories through 429s with the right hashes, empties the outbox, and stops cleanly', async () => {
    const dir = await tempDir('byteor-e2e-outbox-');
    const stateDir = join(dir, 'state');
    const envFile = join(dir, 'agent.env');
    const agent = await cp.admin<{ agentId: string; apiKey: string }>('agents', { body: {} });
    await writeFile(envFile, [`BYTEOR_API_BASE_URL='${cp.info.baseUrl}'`, `BYTEOR_AGENT_ID='${agent.agentId}'`, `BYTEOR_AGENT_API_KEY='${agent.apiKey}'`, `BYTEOR_STATE_DIR='${stateDir}'`, ''].join('\n'), { mode: 0o600 });
    // The first two uploads are told to come back in a second.
    await cp.admin('faults', { body: { route: 'artifacts', status: 429, retryAfter: '1', times: 2 } });

    const child = spawn(process.execPath, [AGENT_BUNDLE, 'run', '--config', envFile, '--dev-outbox-interval', '1', '--dev-heartbeat-interval', '1'], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

    try {
      // The outbox job creates its type directories on its first run.
      await eventually(async () => ((await readdir(join(stateDir, 'outbox')).catch((): string[] => [])).includes('incident_bundle') ? true : undefined), 15_000, 'the outbox directories');

      const expected: string[] = [];
      for (let i = 1; i <= 3; i += 1) {
        const staging = join(stateDir, `.staging-${i}`);
        await writeContent(staging, { 'meta.json': `{"incident":${i},"trigger":"watchdog"}\n`, 'logs/app.log': `incident ${i}\n`.repeat(5_000), 'cores/core.bin': Buffer.alloc(100_000 * i, i) });
        await mkdir(join(dir, 'expected'), { recursive: true });
        expected.push((await packDirectory(staging, join(dir, 'expected', `${i}.tar.gz`))).sha256);
        await rename(staging, join(stateDir, 'outbox', 'incident_bundle', `incident-${i}`));
      }

      const artifacts = await eventually(
        async () => {
          const list = (await cp.admin<ArtifactRecord[]>('artifacts')).filter((a) => a.agentId === agent.agentId);
          return list.length >= 3 && (await pending(stateDir)).length === 0 ? list : undefined;
        },
        30_000,
        'three artifacts and an empty outbox',
      );
      expect(artifacts.map((a) => a.sha256).sort()).toEqual([...expected].sort());
      expect(artifacts.map((a) => a.filename).sort()).toEqual(['incident-1.tar.gz', 'incident-2.tar.gz', 'incident-3.tar.gz']);
      expect(artifacts.every((a) => a.type === 'incident_bundle')).toBe(true);

      const requests = (await cp.admin<RequestRecord[]>('requests?route=artifacts')).filter((r) => r.status !== -1);
      expect(requests.map((r) => r.status)).toEqual([429, 429, 201, 201, 201]);
      // Never back before Retry-After (1 s), measured by the control plane's own clock.
      for (let i = 0; i < 2; i += 1) expect(requests[i + 1]!.at - requests[i]!.at).toBeGreaterThanOrEqual(1_000);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).not.toContain(agent.apiKey);
    expect(stdout).toMatch(/outbox: incident_bundle\/incident-1 uploaded as art_/);
    expect(await pending(stateDir)).toEqual([]);
    expect(await leftovers(stateDir)).toEqual([]);
  });
});
