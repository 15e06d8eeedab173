import { afterEach, describe, expect, it, vi } from 'vitest';
import { RUNTIME_SCOPES } from '../../src/api/types.js';
import { sampleEnrollBody } from './fixtures.js';
import type { Environment } from './types.js';
import { setupControlPlane } from './vitest.js';

const { cp, baseUrl } = setupControlPlane();

function enrollUrl(env: Environment): string {
  return `${baseUrl}/api/v1/orgs/${env.orgId}/projects/${env.projectId}/environments/${env.environmentId}/agents`;
}

function enroll(token: string, options: { env?: Environment; key?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
  return fetch(enrollUrl(options.env ?? cp.defaultEnvironment), {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      ...(options.key === undefined ? { 'idempotency-key': crypto.randomUUID() } : { 'idempotency-key': options.key }),
      ...options.headers,
    },
    body: JSON.stringify(options.body ?? sampleEnrollBody()),
  });
}

afterEach(() => {
  vi.useRealTimers();
});

describe('enrollment (API.md §1)', () => {
  it('answers 201 with a runtime key, the environment and its posture', async () => {
    const token = cp.issueEnrollmentToken();
    const res = await enroll(token);
    expect(res.status).toBe(201);
    const body = (await res.json()) as Record<string, unknown>;
    const env = cp.defaultEnvironment;
    expect(body).toMatchObject({
      name: 'edge-node-01',
      scopes: [...RUNTIME_SCOPES],
      org_id: env.orgId,
      project_id: env.projectId,
      environment_id: env.environmentId,
      environment_posture: 'dev',
      heartbeat_interval_seconds: 30,
    });
    expect(body.agent_id).toMatch(/^agt_[0-9A-Z]{16}$/);
    expect(body.api_key).toMatch(/^byk_live_[A-Za-z0-9]{40}$/);
    const agent = cp.agent(body.agent_id as string);
    expect(agent).toMatchObject({ hostname: 'edge-node-01', arch: 'x64', labels: { region: 'eu-west-1' }, createdBy: 'enrollment', apiKey: body.api_key });
    expect(cp.enrollmentToken(token)?.usedBy).toBe(body.agent_id);
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
  });

  it('is single-use: the same token with a new Idempotency-Key answers 401', async () => {
    const token = cp.issueEnrollmentToken();
    expect((await enroll(token)).status).toBe(201);
    const again = await enroll(token);
    expect(again.status).toBe(401);
    expect(await again.json()).toEqual({ error: { code: 'token_used', message: expect.any(String) } });
    expect(cp.agents()).toHaveLength(1);
  });

  it('replays the same 201 body for the same token and Idempotency-Key, even after use', async () => {
    const token = cp.issueEnrollmentToken();
    const key = crypto.randomUUID();
    const first = (await (await enroll(token, { key })).json()) as Record<string, unknown>;
    const replay = await enroll(token, { key });
    expect(replay.status).toBe(201);
    expect(await replay.json()).toEqual(first);
    expect(cp.agents()).toHaveLength(1);
  });

  it('replays within 24 h only, also after the token expired', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 11, 4, 12) });
    const token = cp.issueEnrollmentToken();
    const key = 'retry-key-1';
    expect((await enroll(token, { key })).status).toBe(201);
    vi.setSystemTime(Date.now() + 23 * 60 * 60 * 1000);
    expect((await enroll(token, { key })).status).toBe(201);
    vi.setSystemTime(Date.now() + 2 * 60 * 60 * 1000);
    expect((await enroll(token, { key })).status).toBe(401);
  });

  it('answers 401 to an expired or unknown token and to no credential', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 11, 4, 12) });
    const token = cp.issueEnrollmentToken({ ttlMs: 60_000 });
    vi.setSystemTime(Date.now() + 60_000);
    const expired = await enroll(token);
    expect(expired.status).toBe(401);
    expect(((await expired.json()) as { error: { code: string } }).error.code).toBe('token_expired');
    expect((await enroll('byt_enroll_nonsense')).status).toBe(401);
    const none = await fetch(enrollUrl(cp.defaultEnvironment), { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'k' }, body: '{}' });
    expect(none.status).toBe(401);
  });

  it('answers 403 to a token of another environment and to a token without agent:enroll', async () => {
    const other = cp.createEnvironment({ posture: 'prod' });
    const token = cp.issueEnrollmentToken({ environmentId: other.environmentId });
    expect((await enroll(token, { env: cp.defaultEnvironment })).status).toBe(403);
    const weak = cp.issueEnrollmentToken({ scopes: ['agent:heartbeat'] });
    const res = await enroll(weak);
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: 'insufficient_scope', required_scope: 'agent:enroll' } });
    // Neither attempt burned the token.
    const ok = await enroll(token, { env: other });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toMatchObject({ environment_posture: 'prod', environment_id: other.environmentId });
  });

  it.each([
    ['not an object', [1, 2]],
    ['no hostname', { name: 'x' }],
    ['a label key with capitals', sampleEnrollBody({ labels: { Region: 'x' } })],
    ['a label value over 256 characters', sampleEnrollBody({ labels: { region: 'x'.repeat(257) } })],
    ['a non-string label value', { hostname: 'h', labels: { region: 5 } }],
  ])('answers 400 to a body with %s, without burning the token', async (_name, body) => {
    const token = cp.issueEnrollmentToken();
    const res = await enroll(token, { body });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'invalid_body' } });
    expect((await enroll(token)).status).toBe(201);
  });

  it('answers 400 to invalid JSON and to a missing Idempotency-Key', async () => {
    const token = cp.issueEnrollmentToken();
    const bad = await fetch(enrollUrl(cp.defaultEnvironment), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': 'k' },
      body: '{"hostname":',
    });
    expect(await bad.json()).toMatchObject({ error: { code: 'invalid_json' } });
    const noKey = await fetch(enrollUrl(cp.defaultEnvironment), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(sampleEnrollBody()),
    });
    expect(noKey.status).toBe(400);
    expect(await noKey.json()).toMatchObject({ error: { code: 'missing_idempotency_key' } });
  });

  it('derives a unique name from the hostname when none is given', async () => {
    const names: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const { name: _omit, ...body } = sampleEnrollBody({ hostname: 'db' });
      const res = await enroll(cp.issueEnrollmentToken(), { body });
      names.push(((await res.json()) as { name: string }).name);
    }
    expect(names).toEqual(['db', 'db-2', 'db-3']);
  });

  it('gives the runtime key the scopes the token says, and records the request', async () => {
    const token = cp.issueEnrollmentToken({ runtimeScopes: ['agent:heartbeat'] });
    const res = await enroll(token, { key: 'k-1' });
    expect(((await res.json()) as { scopes: string[] }).scopes).toEqual(['agent:heartbeat']);
    const [request] = cp.requestsTo('enroll');
    expect(request).toMatchObject({ method: 'POST', status: 201, json: sampleEnrollBody() });
    expect(request?.headers.authorization).toBe(`Bearer ${token}`);
    expect(request?.headers['idempotency-key']).toBe('k-1');
  });

  it('answers a 429 throttle injected as a fault, with Retry-After', async () => {
    cp.fault('enroll', { status: 429, retryAfter: '30' });
    const token = cp.issueEnrollmentToken();
    const res = await enroll(token);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('30');
    expect((await enroll(token)).status).toBe(201);
  });
});
