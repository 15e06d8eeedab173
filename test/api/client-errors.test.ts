import { describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/api/client.js';
import { ForbiddenError, PermanentError, RateLimitedError, TransientError, UnauthorizedError, type ApiError } from '../../src/api/errors.js';
import { setupControlPlane } from '../control-plane/vitest.js';

const NOW = Date.parse('2026-12-04T19:40:00.000Z');
const { cp, baseUrl } = setupControlPlane({ now: () => NOW });

function client(agent = cp.createAgent()): { api: AgentClient; apiKey: string } {
  return { api: new AgentClient({ baseUrl: new URL(baseUrl), agentId: agent.agentId, apiKey: agent.apiKey, now: () => NOW }), apiKey: agent.apiKey };
}

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err === undefined) throw new Error('expected the call to fail');
  return err as ApiError;
}

describe('typed errors from real responses', () => {
  it('401: unauthorized, with method, path, status and request id, never the key', async () => {
    const agent = cp.createAgent();
    const { api, apiKey } = client(agent);
    cp.revokeAgentKey(agent.agentId);
    const err = await failure(api.getDeployment(undefined));
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err).toMatchObject({ method: 'GET', path: `/api/v1/agents/${agent.agentId}/deployment`, status: 401, retryable: false });
    expect(err.requestId).toMatch(/^req_/);
    expect(err.message).toContain(err.requestId!);
    expect(err.message).not.toContain(apiKey);
    expect(err.exitCode).toBe(77);
  });

  it('403: forbidden, naming the missing scope', async () => {
    const agent = cp.createAgent({ scopes: ['agent:heartbeat'] });
    const err = await failure(client(agent).api.getSigningKeys(undefined));
    expect(err).toBeInstanceOf(ForbiddenError);
    expect((err as ForbiddenError).scope).toBe('agent:signing_keys_read');
    expect(err.message).toMatch(/forbidden \(needs agent:signing_keys_read\)/);
  });

  it('429: rate limited, with Retry-After in seconds or as an HTTP-date', async () => {
    const { api } = client();
    cp.fault('deployment', { status: 429, retryAfter: '7' });
    const seconds = await failure(api.getDeployment(undefined));
    expect(seconds).toBeInstanceOf(RateLimitedError);
    expect((seconds as RateLimitedError).retryAfterMs).toBe(7000);
    cp.fault('deployment', { status: 429, retryAfter: 'Fri, 04 Dec 2026 19:41:00 GMT' });
    expect(((await failure(api.getDeployment(undefined))) as RateLimitedError).retryAfterMs).toBe(60_000);
  });

  it('503 with Retry-After is rate limiting; without it, transient like 502 and 504', async () => {
    const { api } = client();
    cp.fault('deployment', { status: 503, retryAfter: '3' });
    expect(await failure(api.getDeployment(undefined))).toBeInstanceOf(RateLimitedError);
    for (const status of [502, 503, 504]) {
      cp.fault('deployment', { status });
      const err = await failure(api.getDeployment(undefined));
      expect(err).toBeInstanceOf(TransientError);
      expect(err).toMatchObject({ status, retryable: true, kind: 'server' });
    }
  });

  it('a dropped connection is transient', async () => {
    const { api } = client();
    cp.fault('heartbeat', { drop: true });
    const err = await failure(api.heartbeat({} as never));
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ kind: 'network', status: undefined });
  });

  it('other 4xx are permanent and carry the server error code and message', async () => {
    const { api } = client();
    cp.fault('status', { status: 400, body: { error: { code: 'invalid_state', message: 'state must be one of downloading, …' } } });
    const err = await failure(api.reportDeploymentStatus('dep_1', { state: 'active', bundle_sha256: 'x', reported_at: 'now', reason: null, message: null }));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ status: 400, code: 'invalid_state', retryable: false });
    expect(err.message).toContain('state must be one of');
  });

  it('copes with a proxy HTML error page', async () => {
    const { api } = client();
    cp.fault('heartbeat', { status: 502, body: '<html><body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>' });
    const err = await failure(api.heartbeat({} as never));
    expect(err).toBeInstanceOf(TransientError);
    expect(err.serverMessage).toMatch(/^non-JSON \(HTML\) body: <html><body><h1>502 Bad Gateway<\/h1> <p>nginx/);
  });

  it('a malformed success body is a transient protocol error, not a crash', async () => {
    const { api } = client();
    cp.setJwksOverride('{"keys": "nope"}');
    const err = await failure(api.getSigningKeys(undefined));
    expect(err).toBeInstanceOf(TransientError);
    expect(err).toMatchObject({ kind: 'protocol' });
  });

  it('sends the User-Agent and bearer key on every runtime call', async () => {
    const agent = cp.createAgent();
    await client(agent).api.getDeployment(undefined);
    const request = cp.requestsTo('deployment')[0]!;
    expect(request.headers.authorization).toBe(`Bearer ${agent.apiKey}`);
    expect(request.headers['user-agent']).toMatch(/^byteor-agent\/\S+ \(node\/\S+; linux; \S+\)$/);
  });
});

describe('base URL with a path prefix', () => {
  const prefixed = setupControlPlane({ baseUrl: 'https://gw.byteor.test/byteor' });
  it('keeps the prefix on every request', async () => {
    const agent = prefixed.cp.createAgent();
    const api = new AgentClient({ baseUrl: new URL('https://gw.byteor.test/byteor/'), agentId: agent.agentId, apiKey: agent.apiKey });
    expect(await api.getDeployment(undefined)).toEqual({ kind: 'none' });
    expect(prefixed.cp.requestsTo('deployment')[0]!.path).toBe(`/byteor/api/v1/agents/${agent.agentId}/deployment`);
  });
});
