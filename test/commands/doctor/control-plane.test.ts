import { describe, expect, it } from 'vitest';
import { checkReadyz, judgeClockSkew, judgeKey, probeKey } from '../../../src/commands/doctor/control-plane.js';
import { setupControlPlane } from '../../control-plane/index.js';

// In-process (msw): nothing leaves the process. The fake stamps Date from its own clock, so a
// control plane whose clock runs ahead shows up as this host being behind.
let offsetMs = 0;
const { cp, baseUrl } = setupControlPlane({ now: () => Date.now() + offsetMs });
const base = new URL(baseUrl);
const who = { agentId: 'agt_x', keyHint: 'byk_live_… sha256:abc', envFile: '/etc/byteor/agent.env' };

async function probe(agent: { agentId: string; apiKey: string }, etags = { deployment: undefined as string | undefined, signingKeys: undefined as string | undefined }) {
  return probeKey({ baseUrl: base, agentId: agent.agentId, apiKey: agent.apiKey, allowInsecureHttp: false, etags });
}

describe('doctor: /readyz and the clock', () => {
  it('passes a ready control plane and measures no skew', async () => {
    offsetMs = 0;
    const outcome = await checkReadyz(base, { allowInsecureHttp: false });
    expect(outcome.result).toMatchObject({ name: 'control plane', status: 'pass', detail: expect.stringMatching(/^https:\/\/api\.byteor\.test\/readyz answered 200/) as unknown });
    expect(judgeClockSkew(outcome.skewMs).status).toBe('pass');
  });

  it('fails a control plane that is up but not ready (503)', async () => {
    cp.setReady(false);
    const outcome = await checkReadyz(base, { allowInsecureHttp: false });
    expect(outcome.reachable).toBe(true);
    expect(outcome.result).toMatchObject({ status: 'fail', detail: expect.stringMatching(/answered 503: the control plane is up but not ready/) as unknown });
  });

  it('fails an unreachable control plane', async () => {
    cp.outage(true);
    const outcome = await checkReadyz(base, { allowInsecureHttp: false });
    expect(outcome.reachable).toBe(false);
    expect(outcome.result).toMatchObject({ status: 'fail', detail: expect.stringMatching(/^cannot reach https:\/\/api\.byteor\.test/) as unknown });
  });

  it('fails a 404 from something that is not the API, pointing at the path prefix', async () => {
    cp.fault('readyz', { status: 404, body: '<html>Not Found</html>' });
    const outcome = await checkReadyz(base, { allowInsecureHttp: false });
    expect(outcome.result).toMatchObject({ status: 'fail', fix: expect.stringMatching(/path prefix/) as unknown });
  });

  it('warns at a minute of skew and fails beyond five, measured against the Date header', async () => {
    offsetMs = 60_000;
    const warnSkew = await checkReadyz(base, { allowInsecureHttp: false });
    expect(judgeClockSkew(warnSkew.skewMs)).toMatchObject({ status: 'warn', detail: expect.stringMatching(/behind the control plane/) as unknown });
    offsetMs = -10 * 60_000;
    const failSkew = await checkReadyz(base, { allowInsecureHttp: false });
    expect(judgeClockSkew(failSkew.skewMs)).toMatchObject({ status: 'fail', detail: expect.stringMatching(/^this host is 10 min ahead of the control plane/) as unknown });
    offsetMs = 0;
  });

  it('judges skew: 30 s and 5 min are the limits; a missing Date header is a warning', () => {
    expect(judgeClockSkew(29_000).status).toBe('pass');
    expect(judgeClockSkew(-31_000).status).toBe('warn');
    expect(judgeClockSkew(299_000).status).toBe('warn');
    expect(judgeClockSkew(301_000).status).toBe('fail');
    expect(judgeClockSkew(undefined).status).toBe('warn');
  });
});

describe('doctor: runtime key and scopes, read-only', () => {
  it('passes an accepted key with both readable scopes, sending only GETs with the stored ETags', async () => {
    const agent = cp.createAgent();
    const results = judgeKey(await probe(agent, { deployment: '"d-stale"', signingKeys: '"k-stale"' }), who);
    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['runtime key', 'pass'],
      ['scope agent:deployment_read', 'pass'],
      ['scope agent:signing_keys_read', 'pass'],
    ]);
    expect(cp.requests.map((r) => r.method)).toEqual(['GET', 'GET']);
    expect(cp.requestsTo('deployment')[0]?.headers['if-none-match']).toBe('"d-stale"');
    expect(cp.requestsTo('signing-keys')[0]?.headers['if-none-match']).toBe('"k-stale"');
    expect(cp.heartbeats).toHaveLength(0);
    expect(cp.agent(agent.agentId).heartbeatCount).toBe(0);
  });

  it('fails a revoked key as 401 and says to re-enroll', async () => {
    const agent = cp.createAgent();
    cp.revokeAgentKey(agent.agentId);
    const results = judgeKey(await probe(agent), who);
    expect(results).toEqual([expect.objectContaining({ name: 'runtime key', status: 'fail', detail: expect.stringMatching(/\(401: revoked, expired or not this agent's\)/) as unknown })]);
    expect(results[0]?.fix).toMatch(/enroll --force/);
  });

  it('tells a missing scope (403) from a rejected key: the key passes, the scope fails', async () => {
    const agent = cp.createAgent({ scopes: ['agent:heartbeat', 'agent:signing_keys_read'] });
    const results = judgeKey(await probe(agent), who);
    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['runtime key', 'pass'],
      ['scope agent:deployment_read', 'fail'],
      ['scope agent:signing_keys_read', 'pass'],
    ]);
    expect(results[1]?.fix).toMatch(/grant agent:deployment_read to agent agt_x/);
  });

  it('warns instead of judging when the scope check is rate limited', async () => {
    const agent = cp.createAgent();
    cp.fault('signing-keys', { status: 429, retryAfter: '30' });
    const results = judgeKey(await probe(agent), who);
    expect(results.find((r) => r.name === 'scope agent:signing_keys_read')).toMatchObject({ status: 'warn', detail: 'not checked: rate limited (429), retry after 30 s' });
  });
});
