import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AgentRuntime } from '../../src/agent/runtime.js';
import { runRun } from '../../src/commands/run.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { captureContext } from '../support/command-context.js';
import { tempDir } from '../support/tmp.js';
import { seededRandom, VirtualClock } from '../support/virtual-clock.js';

const clock = new VirtualClock();
const { cp, baseUrl } = setupControlPlane({ now: () => clock.now() });

const MIN = 60_000;

/** Starts `byteor-agent run` in-process on virtual time, from a real env file. */
async function startAgent(scopes?: string[]) {
  const agent = cp.createAgent(scopes === undefined ? {} : { scopes });
  const dir = await tempDir();
  const envFile = join(dir, 'agent.env');
  const envText = [`BYTEOR_API_BASE_URL='${baseUrl}'`, `BYTEOR_AGENT_ID='${agent.agentId}'`, `BYTEOR_AGENT_API_KEY='${agent.apiKey}'`, `BYTEOR_STATE_DIR='${join(dir, 'state')}'`, ''].join('\n');
  await writeFile(envFile, envText, { mode: 0o600 });
  const captured = captureContext();
  let onStarted: (runtime: AgentRuntime) => void = () => undefined;
  const startedPromise = new Promise<AgentRuntime>((resolve) => {
    onStarted = resolve;
  });
  const exit = runRun({ config: envFile }, captured.ctx, { clock, random: seededRandom(7), onStarted });
  // Either the runtime starts, or run ends early (e.g. a config error) and the test sees why.
  const started = await Promise.race([startedPromise, exit.then((code) => Promise.reject(new Error(`run exited ${code}: ${captured.stderr.join('\n')}`)))]);
  return {
    ...agent,
    ...captured,
    envFile,
    envText,
    exit,
    runtime: started,
    advance: (ms: number) => clock.advance(ms, () => started.scheduler.whenIdle()),
    status: async () => JSON.parse(await readFile(join(dir, 'state', 'status.json'), 'utf8')) as Record<string, unknown>,
    stop: async () => {
      captured.controller.abort('SIGTERM');
      return exit;
    },
  };
}

describe('401: the runtime key is rejected', () => {
  it('keeps credentials, logs one error, reports unauthorized, re-checks slowly, and recovers by itself', async () => {
    const agent = await startAgent();
    cp.revokeAgentKey(agent.agentId);
    await agent.advance(10 * MIN);

    expect(await readFile(agent.envFile, 'utf8')).toBe(agent.envText);
    const errors = agent.logs.records.filter((r) => r.level === 'error');
    expect(errors).toHaveLength(1);
    expect(String(errors[0]!.msg)).toMatch(/401.*enroll --force/s);
    expect(await agent.status()).toMatchObject({ state: 'unauthorized', problems: [expect.objectContaining({ code: 'unauthorized' })] });
    // Three jobs, each first at start and then about every 5 minutes: a handful of requests, not a flood.
    const heartbeats = cp.requestsTo('heartbeat');
    expect(heartbeats.length).toBeGreaterThanOrEqual(2);
    expect(heartbeats.length).toBeLessThanOrEqual(4);
    expect(cp.requests.length).toBeLessThanOrEqual(12);

    cp.restoreAgentKey(agent.agentId);
    await agent.advance(7 * MIN);
    expect(await agent.status()).toMatchObject({ state: 'healthy', problems: [] });
    expect(agent.logs.records.filter((r) => r.level === 'error')).toHaveLength(1);
    expect(agent.logs.records.some((r) => r.level === 'info' && String(r.msg).includes('accepted again'))).toBe(true);
    expect(cp.heartbeatsOf(agent.agentId).length).toBeGreaterThan(0);

    expect(await agent.stop()).toBe(0);
    expect(agent.logs.text()).not.toContain(agent.apiKey);
  });
});

describe('403: a scope is missing', () => {
  it('pauses only the job that needs it, reports scope_missing on heartbeats, and resumes when granted', async () => {
    const agent = await startAgent(['agent:heartbeat', 'agent:signing_keys_read', 'agent:artifact_upload']);
    await agent.advance(14 * MIN);

    const deploymentCalls = cp.requestsTo('deployment');
    expect(deploymentCalls).toHaveLength(1);
    expect(deploymentCalls[0]!.status).toBe(403);
    const last = cp.heartbeatsOf(agent.agentId).at(-1)!.body;
    expect(last.status).toBe('degraded');
    expect(last.problems).toEqual([{ code: 'scope_missing', message: 'runtime key lacks agent:deployment_read' }]);
    expect(cp.heartbeatsOf(agent.agentId).length).toBeGreaterThan(20);
    expect(agent.logs.records.filter((r) => r.level === 'error')).toHaveLength(1);

    cp.setAgentScopes(agent.agentId, ['agent:heartbeat', 'agent:deployment_read', 'agent:signing_keys_read', 'agent:artifact_upload']);
    await agent.advance(5 * MIN);
    expect(cp.requestsTo('deployment').at(-1)!.status).toBe(204);
    await agent.advance(MIN);
    expect(cp.heartbeatsOf(agent.agentId).at(-1)!.body.problems).toEqual([]);
    expect(await agent.status()).toMatchObject({ state: 'healthy' });
    expect(await agent.stop()).toBe(0);
  });
});
