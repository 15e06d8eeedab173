import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AgentRuntime } from '../../src/agent/runtime.js';
import { runCli } from '../../src/cli.js';
import { runRun } from '../../src/commands/run.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { captureContext } from '../support/command-context.js';
import { tempDir } from '../support/tmp.js';
import { seededRandom, VirtualClock } from '../support/virtual-clock.js';

const clock = new VirtualClock();
const { cp, baseUrl, server } = setupControlPlane({ now: () => clock.now() });

async function envFileFor(agent: { agentId: string; apiKey: string }): Promise<{ envFile: string; stateDir: string }> {
  const dir = await tempDir();
  const envFile = join(dir, 'agent.env');
  const stateDir = join(dir, 'state');
  await writeFile(envFile, [`BYTEOR_API_BASE_URL='${baseUrl}'`, `BYTEOR_AGENT_ID='${agent.agentId}'`, `BYTEOR_AGENT_API_KEY='${agent.apiKey}'`, `BYTEOR_STATE_DIR='${stateDir}'`, ''].join('\n'), { mode: 0o600 });
  return { envFile, stateDir };
}

function nextRequestTo(pathPart: string): Promise<void> {
  return new Promise((resolve) => {
    const listener = ({ request }: { request: Request }): void => {
      if (!new URL(request.url).pathname.endsWith(pathPart)) return;
      server.events.removeListener('request:start', listener);
      resolve();
    };
    server.events.on('request:start', listener);
  });
}

describe('byteor-agent run', () => {
  it('exits 0 promptly on SIGTERM during a slow request, with state written', async () => {
    const agent = cp.createAgent();
    const { envFile, stateDir } = await envFileFor(agent);
    cp.fault('heartbeat', { delayMs: 10 * 60_000 });
    const captured = captureContext();
    let onStarted: (runtime: AgentRuntime) => void = () => undefined;
    const started = new Promise<AgentRuntime>((resolve) => {
      onStarted = resolve;
    });
    const exit = runRun({ config: envFile }, captured.ctx, { clock, random: seededRandom(3), onStarted });
    await started;
    const hanging = nextRequestTo('/heartbeat');
    // No settling: the heartbeat hangs on the server by design.
    await clock.advance(2_000);
    await hanging;

    const t0 = performance.now();
    captured.controller.abort('SIGTERM');
    expect(await exit).toBe(0);
    expect(performance.now() - t0).toBeLessThan(10_000);

    const state = JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as { heartbeat: { sequence: number } };
    expect(state.heartbeat.sequence).toBe(1);
    const status = JSON.parse(await readFile(join(stateDir, 'status.json'), 'utf8')) as { state: string };
    expect(status.state).toBe('stopped');
    expect(captured.logs.records.some((r) => r.msg === 'stopped')).toBe(true);
    expect(captured.logs.text()).not.toContain(agent.apiKey);
  });

  it('--once runs every job once and exits 0 when all succeeded', async () => {
    const agent = cp.createAgent();
    const { envFile } = await envFileFor(agent);
    const captured = captureContext();
    expect(await runRun({ config: envFile, once: true }, captured.ctx)).toBe(0);
    expect(captured.stderr).toEqual(expect.arrayContaining(['heartbeat: ok', 'deployment: ok', 'signing-keys: ok']));
    expect(cp.heartbeatsOf(agent.agentId)).toHaveLength(1);
  });

  it('--once exits non-zero and says which job failed', async () => {
    const agent = cp.createAgent();
    const { envFile } = await envFileFor(agent);
    cp.fault('deployment', { status: 500 });
    const captured = captureContext();
    expect(await runRun({ config: envFile, once: true }, captured.ctx)).toBe(1);
    expect(captured.stderr.find((l) => l.startsWith('deployment:'))).toMatch(/deployment: failed .*500/);
  });

  it('exits 78 with one clear message when not enrolled', async () => {
    const dir = await tempDir();
    const envFile = join(dir, 'agent.env');
    await writeFile(envFile, `BYTEOR_API_BASE_URL='${baseUrl}'\n`);
    const captured = captureContext();
    expect(await runCli(['node', 'byteor-agent', 'run', '--config', envFile], captured.ctx)).toBe(78);
    expect(captured.stderr).toHaveLength(1);
    expect(captured.stderr[0]).toMatch(/BYTEOR_AGENT_ID is required .*byteor-agent enroll/);
    expect(cp.requests).toHaveLength(0);
  });

  it('exits 78 before any request when the base URL is bad', async () => {
    const captured = captureContext({ env: { BYTEOR_ENV_FILE: '/nonexistent/agent.env', BYTEOR_API_BASE_URL: 'http://api.example.com', BYTEOR_AGENT_ID: 'agt_1', BYTEOR_AGENT_API_KEY: 'byk_live_0123456789' } });
    expect(await runCli(['node', 'byteor-agent', 'run'], captured.ctx)).toBe(78);
    expect(captured.stderr.join('\n')).toMatch(/BYTEOR_API_BASE_URL uses plain http:\/\//);
    expect(captured.stderr.join('\n')).not.toContain('byk_live_0123456789');
    expect(cp.requests).toHaveLength(0);
  });
});
