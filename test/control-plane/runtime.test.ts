import { createPublicKey, verify } from 'node:crypto';
import canonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import type { Deployment, Jwk, Jwks } from '../../src/api/types.js';
import { decodeApprovalCredential } from './approval.js';
import { buildBundle } from './bundles.js';
import { specHash } from './crypto.js';
import { sampleHeartbeat } from './fixtures.js';
import { setupControlPlane } from './vitest.js';

const { cp, baseUrl } = setupControlPlane();

function call(path: string, apiKey: string | undefined, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (apiKey !== undefined) headers.set('authorization', `Bearer ${apiKey}`);
  if (init.body !== undefined) headers.set('content-type', 'application/json');
  return fetch(`${baseUrl}${path}`, { ...init, headers });
}

const post = (path: string, apiKey: string, body: unknown): Promise<Response> => call(path, apiKey, { method: 'POST', body: JSON.stringify(body) });

/** Verifies an Ed25519 signature the way an agent would: the JWK from the served key set. */
function verifies(jwk: Jwk | undefined, data: Uint8Array | string, signatureB64url: string): boolean {
  if (jwk === undefined) return false;
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
  return verify(null, Buffer.from(data), key, Buffer.from(signatureB64url, 'base64url'));
}

async function servedKeys(agentId: string, apiKey: string): Promise<Jwks> {
  return (await (await call(`/api/v1/agents/${agentId}/signing-keys`, apiKey)).json()) as Jwks;
}

describe('runtime authentication', () => {
  it('answers 403 naming the missing scope, in the documented body', async () => {
    const { agentId, apiKey } = cp.createAgent({ scopes: ['agent:heartbeat', 'agent:deployment_read', 'agent:signing_keys_read'] });
    const res = await call(`/api/v1/agents/${agentId}/artifacts`, apiKey, { method: 'POST', body: 'x' });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({
      error: { code: 'insufficient_scope', message: 'runtime key lacks agent:artifact_upload', required_scope: 'agent:artifact_upload' },
    });
  });

  it('answers 401 to a missing, unknown, revoked or other agent key, and recovers on restore', async () => {
    const a = cp.createAgent();
    const b = cp.createAgent();
    const path = `/api/v1/agents/${a.agentId}/deployment`;
    expect((await call(path, undefined)).status).toBe(401);
    expect((await call(path, 'byk_live_unknown')).status).toBe(401);
    expect((await call(path, b.apiKey)).status).toBe(401);
    cp.revokeAgentKey(a.agentId);
    const revoked = await call(path, a.apiKey);
    expect(revoked.status).toBe(401);
    expect(await revoked.json()).toMatchObject({ error: { code: 'credential_revoked' } });
    cp.restoreAgentKey(a.agentId);
    expect((await call(path, a.apiKey)).status).toBe(204);
  });

  it('applies scope changes at once', async () => {
    const { agentId, apiKey } = cp.createAgent();
    cp.setAgentScopes(agentId, ['agent:deployment_read']);
    expect((await post(`/api/v1/agents/${agentId}/heartbeat`, apiKey, sampleHeartbeat())).status).toBe(403);
    cp.setAgentScopes(agentId, ['agent:heartbeat']);
    expect((await post(`/api/v1/agents/${agentId}/heartbeat`, apiKey, sampleHeartbeat())).status).toBe(200);
  });
});

describe('heartbeat (API.md §2)', () => {
  it('records the body and advises the interval', async () => {
    const { agentId, apiKey } = cp.createAgent();
    cp.setHeartbeatInterval(12);
    const res = await post(`/api/v1/agents/${agentId}/heartbeat`, apiKey, sampleHeartbeat({ sequence: 7 }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { server_time: string; heartbeat_interval_seconds: number };
    expect(body.heartbeat_interval_seconds).toBe(12);
    expect(Number.isNaN(Date.parse(body.server_time))).toBe(false);
    expect(cp.heartbeatsOf(agentId).map((h) => h.body.sequence)).toEqual([7]);
    expect(cp.agent(agentId)).toMatchObject({ heartbeatCount: 1, lastHeartbeat: { body: { sequence: 7 } } });
    cp.setHeartbeatInterval(600, agentId);
    const next = (await (await post(`/api/v1/agents/${agentId}/heartbeat`, apiKey, sampleHeartbeat({ sequence: 8 }))).json()) as { heartbeat_interval_seconds: number };
    expect(next.heartbeat_interval_seconds).toBe(600);
  });

  it.each([
    ['a missing host', { host: undefined }],
    ['an unknown status', { status: 'ok' }],
    ['problems while healthy', { problems: [{ code: 'scope_missing', message: 'runtime key lacks agent:artifact_upload' }] }],
    ['a bad deployment state', { deployment: { deployment_id: 'dep_1', bundle_sha256: 'a'.repeat(64), state: 'running' } }],
    ['a negative sequence', { sequence: -1 }],
  ])('answers 400 to %s and records nothing', async (_name, change) => {
    const { agentId, apiKey } = cp.createAgent();
    const res = await post(`/api/v1/agents/${agentId}/heartbeat`, apiKey, { ...sampleHeartbeat(), ...change });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'invalid_body' } });
    expect(cp.heartbeats).toHaveLength(0);
  });

  it('answers 415 to a body not labelled application/json', async () => {
    const { agentId, apiKey } = cp.createAgent();
    const res = await fetch(`${baseUrl}/api/v1/agents/${agentId}/heartbeat`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: JSON.stringify(sampleHeartbeat()) });
    expect(res.status).toBe(415);
  });
});

describe('deployment fetch (API.md §3)', () => {
  it('answers 204 with nothing published, then 200 with an ETag, then 304 for that ETag', async () => {
    const { agentId, apiKey } = cp.createAgent();
    const path = `/api/v1/agents/${agentId}/deployment`;
    expect((await call(path, apiKey)).status).toBe(204);
    const published = cp.publishDeployment({ agentId, bundle: await buildBundle({ 'spec.kv': 'a=1\n' }) });
    const res = await call(path, apiKey);
    expect(res.status).toBe(200);
    const etag = res.headers.get('etag') ?? '';
    expect(etag).toMatch(/^"[^"]+"$/);
    expect(await res.json()).toEqual(published);
    const again = await call(path, apiKey, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect(again.headers.get('etag')).toBe(etag);
    // A new deployment changes the ETag; clearing it brings back 204.
    cp.publishDeployment({ agentId, bundle: await buildBundle({ 'spec.kv': 'a=2\n' }) });
    const changed = await call(path, apiKey, { headers: { 'if-none-match': etag } });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
    cp.clearDeployment({ agentId });
    expect((await call(path, apiKey)).status).toBe(204);
  });

  it('serves an environment-wide deployment to every agent of it, newest target winning', async () => {
    const a = cp.createAgent();
    const b = cp.createAgent();
    const envWide = cp.publishDeployment({ bundle: await buildBundle({ 'x.txt': '1' }) });
    const own = cp.publishDeployment({ agentId: b.agentId, bundle: await buildBundle({ 'x.txt': '2' }) });
    const idOf = async (agent: { agentId: string; apiKey: string }): Promise<string> =>
      ((await (await call(`/api/v1/agents/${agent.agentId}/deployment`, agent.apiKey)).json()) as Deployment).deployment_id;
    expect(await idOf(a)).toBe(envWide.deployment_id);
    expect(await idOf(b)).toBe(own.deployment_id);
    expect(envWide.bundle.url).toBe(`/api/v1/environments/${cp.defaultEnvironment.environmentId}/deployments/${envWide.deployment_id}/bundle`);
    expect(own.bundle.url).toBe(`/api/v1/agents/${b.agentId}/deployments/${own.deployment_id}/bundle`);
  });

  it('signs the canonical JSON without signature with a key from the served JWKS', async () => {
    const { agentId, apiKey } = cp.createAgent();
    const bundle = await buildBundle({ 'spec.kv': 'a=1\n', 'conf/app.yaml': 'x: 1\n' });
    cp.publishDeployment({ agentId, bundle, extra: { notes: { z: 1, a: [1, 'two'] } } });
    const served = (await (await call(`/api/v1/agents/${agentId}/deployment`, apiKey)).json()) as Deployment;
    const jwks = await servedKeys(agentId, apiKey);
    const { signature, ...unsigned } = served;
    expect(signature).toMatchObject({ alg: 'EdDSA', kid: cp.currentKid() });
    const jwk = jwks.keys.find((key) => key.kid === signature.kid);
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    expect(verifies(jwk, canonicalize(unsigned) ?? '', signature.value)).toBe(true);
    expect(served.bundle).toMatchObject({ size_bytes: bundle.length, format: 'tar+gzip' });
    expect(served.approval_credential).toBeNull();
    // The overrides claim other bytes than served, still validly signed.
    const lying = cp.publishDeployment({ agentId, bundle, sizeOverride: 1, sha256Override: 'f'.repeat(64) });
    const { signature: sig2, ...rest2 } = lying;
    expect(verifies(jwk, canonicalize(rest2) ?? '', sig2.value)).toBe(true);
    const garbage = cp.publishDeployment({ agentId, bundle, signatureOverride: { value: 'AAAA' } });
    const { signature: sig3, ...rest3 } = garbage;
    expect(verifies(jwk, canonicalize(rest3) ?? '', sig3.value)).toBe(false);
  });

  it('signs with an unpublished key when told to use an unknown kid', async () => {
    const { agentId, apiKey } = cp.createAgent();
    const dep = cp.publishDeployment({ agentId, bundle: await buildBundle({ a: '1' }), kid: 'key-from-the-future' });
    expect(dep.signature.kid).toBe('key-from-the-future');
    expect((await servedKeys(agentId, apiKey)).keys.map((k) => k.kid)).not.toContain('key-from-the-future');
    cp.addSigningKey({ kid: 'key-from-the-future' });
    const jwk = (await servedKeys(agentId, apiKey)).keys.find((k) => k.kid === 'key-from-the-future');
    const { signature, ...rest } = dep;
    expect(verifies(jwk, canonicalize(rest) ?? '', signature.value)).toBe(true);
  });

  it('attaches a valid approval credential by default in a prod environment', async () => {
    const prod = cp.createEnvironment({ posture: 'prod' });
    const { agentId } = cp.createAgent({ environmentId: prod.environmentId });
    const dep = cp.publishDeployment({ agentId, bundle: await buildBundle({ 'spec.kv': 'replicas=3\n' }) });
    expect(typeof dep.approval_credential).toBe('string');
    const { payload } = decodeApprovalCredential(dep.approval_credential ?? '');
    expect(payload).toMatchObject({ environment_id: prod.environmentId, environment_posture: 'prod', spec_hash: specHash('replicas=3\n') });
  });
});

describe('approval credentials (API.md §7)', () => {
  it('verify: Ed25519 over the exact canonical-JSON payload bytes, by kid from the key set', async () => {
    const { agentId, apiKey } = cp.createAgent();
    const credential = cp.issueApprovalCredential({}, { specKv: 'a=1\n' });
    const [payloadPart = '', sigPart = ''] = credential.split('.');
    const payloadBytes = Buffer.from(payloadPart, 'base64url');
    const payload = JSON.parse(payloadBytes.toString('utf8')) as Record<string, unknown>;
    expect(payloadBytes.toString('utf8')).toBe(canonicalize(payload));
    const env = cp.defaultEnvironment;
    expect(payload).toMatchObject({
      v: 1,
      kid: cp.currentKid(),
      org_id: env.orgId,
      project_id: env.projectId,
      environment_id: env.environmentId,
      environment_posture: 'dev',
      spec_hash: specHash('a=1\n'),
      capabilities: ['deploy'],
      issued_by: expect.any(String),
      approval_id: expect.stringMatching(/^apr_/),
    });
    expect(Date.parse(payload.expires_at as string) - Date.parse(payload.issued_at as string)).toBe(3_600_000);
    const jwk = (await servedKeys(agentId, apiKey)).keys.find((key) => key.kid === payload.kid);
    expect(verifies(jwk, payloadBytes, sigPart)).toBe(true);
  });

  it('can be signed by a stranger key, tampered with, or stripped of fields', async () => {
    const { agentId, apiKey } = cp.createAgent();
    const jwk = (await servedKeys(agentId, apiKey)).keys[0];
    const check = (credential: string): boolean => {
      const [payloadPart = '', sigPart = ''] = credential.split('.');
      return verifies(jwk, Buffer.from(payloadPart, 'base64url'), sigPart);
    };
    expect(check(cp.issueApprovalCredential({}, { signWith: 'other-key' }))).toBe(false);
    const tampered = cp.issueApprovalCredential({}, { tamper: { capabilities: ['deploy', 'admin'] } });
    expect(check(tampered)).toBe(false);
    expect(decodeApprovalCredential(tampered).payload).toMatchObject({ capabilities: ['deploy', 'admin'] });
    const stripped = cp.issueApprovalCredential({ v: undefined, capabilities: ['read'] });
    expect(check(stripped)).toBe(true);
    expect(decodeApprovalCredential(stripped).payload).not.toHaveProperty('v');
  });
});

describe('signing keys (API.md §5)', () => {
  it('serves the JWKS with an ETag, 304 while unchanged, a new ETag on rotation', async () => {
    const { agentId, apiKey } = cp.createAgent();
    const path = `/api/v1/agents/${agentId}/signing-keys`;
    const first = await call(path, apiKey);
    const etag = first.headers.get('etag') ?? '';
    expect(((await first.json()) as Jwks).keys).toHaveLength(1);
    expect((await call(path, apiKey, { headers: { 'if-none-match': etag } })).status).toBe(304);
    expect((await call(path, apiKey, { headers: { 'if-none-match': `W/${etag}` } })).status).toBe(304);

    const oldKid = cp.currentKid();
    const newKid = cp.addSigningKey({ kid: 'key-2026-12', exp: 1_900_000_000 });
    const rotated = await call(path, apiKey, { headers: { 'if-none-match': etag } });
    expect(rotated.status).toBe(200);
    const rotatedEtag = rotated.headers.get('etag');
    expect(rotatedEtag).not.toBe(etag);
    expect(((await rotated.json()) as Jwks).keys.map((key) => [key.kid, key.exp])).toEqual([
      [oldKid, undefined],
      [newKid, 1_900_000_000],
    ]);
    expect(cp.currentKid()).toBe(newKid);
    cp.removeSigningKey(oldKid);
    const removed = await call(path, apiKey, { headers: { 'if-none-match': rotatedEtag ?? '' } });
    expect(((await removed.json()) as Jwks).keys.map((key) => key.kid)).toEqual([newKid]);
  });

  it('serves an override verbatim, garbage included', async () => {
    const { agentId, apiKey } = cp.createAgent();
    cp.setJwksOverride('{"keys": [tru');
    const res = await call(`/api/v1/agents/${agentId}/signing-keys`, apiKey);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('{"keys": [tru');
    cp.setJwksOverride(undefined);
    expect(((await servedKeys(agentId, apiKey)).keys)).toHaveLength(1);
  });
});

describe('status reports (API.md §4)', () => {
  it('records valid reports (204) and refuses bad state or reason (400)', async () => {
    const { agentId, apiKey } = cp.createAgent();
    const dep = cp.publishDeployment({ agentId, bundle: await buildBundle({ a: '1' }) });
    const path = `/api/v1/agents/${agentId}/deployments/${dep.deployment_id}/status`;
    const report = { state: 'failed', bundle_sha256: dep.bundle.sha256, reported_at: '2026-12-04T19:41:00.000Z', reason: 'digest_mismatch', message: 'sha256 differs' };
    expect((await post(path, apiKey, report)).status).toBe(204);
    expect(cp.statusReports).toEqual([{ agentId, deploymentId: dep.deployment_id, body: report, at: expect.any(Number) }]);
    expect(cp.agent(agentId).deploymentStates[dep.deployment_id]).toMatchObject({ state: 'failed', reason: 'digest_mismatch' });

    const badState = await post(path, apiKey, { ...report, state: 'exploded' });
    expect(badState.status).toBe(400);
    expect(await badState.json()).toMatchObject({ error: { code: 'invalid_state' } });
    const badReason = await post(path, apiKey, { ...report, reason: 'bad_luck' });
    expect(await badReason.json()).toMatchObject({ error: { code: 'invalid_reason' } });
    const noReason = await post(path, apiKey, { ...report, reason: null });
    expect(noReason.status).toBe(400);
    const unknown = await post(`/api/v1/agents/${agentId}/deployments/dep_nope/status`, apiKey, report);
    expect(unknown.status).toBe(404);
    expect(cp.statusReports).toHaveLength(1);
  });
});
