import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AgentClient, enrollAgent, probeHealth } from '../../src/api/client.js';
import { ForbiddenError } from '../../src/api/errors.js';
import { Transport } from '../../src/api/transport.js';
import { startControlPlaneCli } from '../../scripts/control-plane.js';
import { readBundleFile } from './bundles.js';
import { sha256Hex } from './crypto.js';
import { artifactForm, sampleEnrollBody, sampleHeartbeat } from './fixtures.js';
import { startControlPlaneServer, type ControlPlaneServer } from './http-server.js';

// Real HTTP on 127.0.0.1: no msw here, the global fetch really connects (to loopback only).
let server: ControlPlaneServer;
let dir: string;

beforeAll(async () => {
  server = await startControlPlaneServer();
  dir = await mkdtemp(join(tmpdir(), 'byteor-cp-'));
  await mkdir(join(dir, 'seed', 'conf'), { recursive: true });
  await writeFile(join(dir, 'seed', 'spec.kv'), 'replicas=3\n');
  await writeFile(join(dir, 'seed', 'conf', 'app.yaml'), 'x: 1\n');
});

afterEach(() => {
  server.cp.reset();
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const auth = (apiKey: string): Record<string, string> => ({ authorization: `Bearer ${apiKey}` });

async function admin(path: string, body?: unknown, method = body === undefined ? 'GET' : 'POST'): Promise<unknown> {
  const res = await fetch(`${server.adminUrl}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const json = (await res.json()) as unknown;
  if (!res.ok) throw new Error(`admin ${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

describe('the control plane over real HTTP', () => {
  it('serves the API on 127.0.0.1 with the common headers', async () => {
    expect(server.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${server.baseUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toMatch(/^req_/);
    expect(res.headers.get('date')).not.toBeNull();
    expect((await fetch(`${server.baseUrl}/api/v1/unknown`)).status).toBe(404);
  });

  it('drops the connection for a drop fault: fetch fails like a dead peer', async () => {
    server.cp.fault('healthz', { drop: true });
    const failure = await fetch(`${server.baseUrl}/healthz`).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(TypeError);
    expect(server.cp.requestsTo('healthz')[0]?.status).toBe(0);
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
  });

  it('abandons a delayed answer when the client disconnects', async () => {
    server.cp.fault('healthz', { delayMs: 600_000 });
    const controller = new AbortController();
    const pending = fetch(`${server.baseUrl}/healthz`, { signal: controller.signal });
    await vi.waitFor(() => expect(server.cp.requestsTo('healthz')).toHaveLength(1));
    controller.abort();
    await expect(pending).rejects.toThrow();
    // The handler's timer is cleared at once: the request ends as a dropped connection.
    await vi.waitFor(() => expect(server.cp.requestsTo('healthz')[0]?.status).toBe(0));
  });

  it('cuts a bundle body mid-stream for truncateAfterBytes, and resumes with Range', async () => {
    const { agentId, apiKey } = server.cp.createAgent();
    const bundle = Buffer.alloc(500_000, 1);
    const dep = server.cp.publishDeployment({ agentId, bundle });
    server.cp.fault('bundle', { truncateAfterBytes: 200_000 });
    const res = await fetch(`${server.baseUrl}${dep.bundle.url}`, { headers: auth(apiKey) });
    expect(res.status).toBe(200);
    let received = 0;
    const reader = res.body!.getReader();
    const outcome = await (async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return 'complete';
        received += value.byteLength;
      }
    })().catch((err: unknown) => err);
    expect(outcome).toBeInstanceOf(Error);
    expect(received).toBeLessThan(bundle.length);
    const rest = await fetch(`${server.baseUrl}${dep.bundle.url}`, { headers: { ...auth(apiKey), range: `bytes=${received}-` } });
    expect(rest.status).toBe(206);
    expect((await rest.arrayBuffer()).byteLength).toBe(bundle.length - received);
  });

  it('serves cross-origin bundles on http://localhost:<port> without auth, refusing Authorization', async () => {
    const { agentId, apiKey } = server.cp.createAgent();
    const dep = server.cp.publishDeployment({ agentId, bundle: Buffer.from('bundle bytes'), bundleUrl: 'cross-origin' });
    expect(dep.bundle.url.startsWith(`${server.storageOrigin}/_storage/`)).toBe(true);
    expect(server.storageOrigin).toBe(`http://localhost:${server.port}`);
    const res = await fetch(dep.bundle.url);
    expect(await res.text()).toBe('bundle bytes');
    expect((await fetch(dep.bundle.url, { headers: auth(apiKey) })).status).toBe(400);
  });

  it('takes a streamed multipart upload', async () => {
    const { agentId, apiKey } = server.cp.createAgent();
    const { form, metadata } = artifactForm(Buffer.alloc(3 * 1024 * 1024, 9), { type: 'snapshot' });
    const encoded = new Response(form);
    const res = await fetch(`${server.baseUrl}/api/v1/agents/${agentId}/artifacts`, {
      method: 'POST',
      headers: { ...auth(apiKey), 'content-type': encoded.headers.get('content-type') ?? '' },
      body: encoded.body,
      duplex: 'half',
      redirect: 'error',
    } as RequestInit & { duplex: 'half' });
    expect(res.status).toBe(201);
    expect(server.cp.artifacts[0]).toMatchObject({ sha256: metadata.sha256, sizeBytes: 3 * 1024 * 1024 });
    expect(server.cp.requestsTo('artifacts')[0]?.headers['transfer-encoding']).toBeUndefined();
  });

  it('works with the agent’s own client end to end (smoke)', async () => {
    const transport = new Transport({ baseUrl: new URL(server.baseUrl) });
    const env = server.cp.defaultEnvironment;
    const enrolled = await enrollAgent(transport, {
      orgId: env.orgId,
      projectId: env.projectId,
      environmentId: env.environmentId,
      token: server.cp.issueEnrollmentToken({ runtimeScopes: ['agent:heartbeat', 'agent:deployment_read', 'agent:signing_keys_read'] }),
      idempotencyKey: crypto.randomUUID(),
      request: sampleEnrollBody(),
    });
    const client = new AgentClient({ baseUrl: new URL(server.baseUrl), agentId: enrolled.agent_id, apiKey: enrolled.api_key });
    expect((await client.heartbeat(sampleHeartbeat())).heartbeat_interval_seconds).toBe(30);

    const bundle = Buffer.from(await (await import('./bundles.js')).buildBundle({ 'spec.kv': 'a=1\n' }));
    server.cp.publishDeployment({ agentId: enrolled.agent_id, bundle });
    const fetched = await client.getDeployment(undefined);
    if (fetched.kind !== 'deployment') throw new Error(`expected a deployment, got ${fetched.kind}`);
    expect(await client.getDeployment(fetched.etag)).toEqual({ kind: 'not_modified' });
    const sent = await client.openBundle(fetched.deployment.bundle.url, { offset: 10 });
    const tail = Buffer.from(await sent.response.arrayBuffer());
    sent.finish();
    expect(sent.response.status).toBe(206);
    expect(sha256Hex(Buffer.concat([bundle.subarray(0, 10), tail]))).toBe(fetched.deployment.bundle.sha256);
    await client.reportDeploymentStatus(fetched.deployment.deployment_id, {
      state: 'active',
      bundle_sha256: fetched.deployment.bundle.sha256,
      reported_at: new Date().toISOString(),
      reason: null,
      message: null,
    });
    const keys = await client.getSigningKeys(undefined);
    expect(keys.kind === 'keys' && keys.jwks.keys[0]?.kid).toBe(fetched.deployment.signature.kid);

    // The key lacks agent:artifact_upload: the client names the scope from our 403.
    const { form, metadata } = artifactForm('x');
    const upload = client.uploadArtifact({ metadata, file: form.get('file') as Blob });
    await expect(upload).rejects.toBeInstanceOf(ForbiddenError);
    await expect(upload).rejects.toMatchObject({ scope: 'agent:artifact_upload' });
    expect(await probeHealth(transport, '/readyz')).toMatchObject({ status: 200 });
    expect(server.cp.agent(enrolled.agent_id)).toMatchObject({ heartbeatCount: 1, deploymentStates: { [fetched.deployment.deployment_id]: { state: 'active' } } });
  });
});

describe('the admin API', () => {
  it('arranges the control plane and reads its records', async () => {
    const state = (await admin('/state')) as { baseUrl: string; defaultEnvironment: { orgId: string; projectId: string; environmentId: string } };
    expect(state.baseUrl).toBe(server.baseUrl);
    const env = state.defaultEnvironment;
    const { token } = (await admin('/enrollment-tokens', {})) as { token: string };
    const enrolled = await fetch(`${server.baseUrl}/api/v1/orgs/${env.orgId}/projects/${env.projectId}/environments/${env.environmentId}/agents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': 'k' },
      body: JSON.stringify(sampleEnrollBody()),
    });
    const { agent_id: agentId, api_key: apiKey } = (await enrolled.json()) as { agent_id: string; api_key: string };
    expect(((await admin('/agents')) as { agentId: string }[]).map((a) => a.agentId)).toEqual([agentId]);

    const dep = (await admin('/deployments', { dir: join(dir, 'seed') })) as { deployment_id: string; bundle: { url: string; sha256: string } };
    const bundle = Buffer.from(await (await fetch(`${server.baseUrl}${dep.bundle.url}`, { headers: auth(apiKey) })).arrayBuffer());
    expect(sha256Hex(bundle)).toBe(dep.bundle.sha256);
    expect(readBundleFile(bundle, 'conf/app.yaml')?.toString()).toBe('x: 1\n');

    await admin('/faults', { route: 'heartbeat', status: 503, retryAfter: '3' });
    const heartbeat = (): Promise<Response> =>
      fetch(`${server.baseUrl}/api/v1/agents/${agentId}/heartbeat`, { method: 'POST', headers: { ...auth(apiKey), 'content-type': 'application/json' }, body: JSON.stringify(sampleHeartbeat()) });
    expect((await heartbeat()).status).toBe(503);
    expect((await heartbeat()).status).toBe(200);
    expect(((await admin('/requests?route=heartbeat')) as { status: number; headers: Record<string, string> }[]).map((r) => [r.status, r.headers.authorization])).toEqual([
      [503, `Bearer ${apiKey}`],
      [200, `Bearer ${apiKey}`],
    ]);
    expect((await admin(`/heartbeats?agentId=${agentId}`)) as unknown[]).toHaveLength(1);

    await admin('/outage', { on: true });
    await expect(fetch(`${server.baseUrl}/healthz`)).rejects.toThrow();
    await admin('/outage', { on: false });

    const { kid } = (await admin('/signing-keys', { kid: 'key-next' })) as { kid: string };
    expect(((await admin('/signing-keys')) as { keys: { kid: string }[] }).keys.map((k) => k.kid)).toContain(kid);
    await admin(`/signing-keys/${kid}`, undefined, 'DELETE');
    await admin('/artifact-budget', { limit: 0, windowMs: 60_000 });
    const limited = await fetch(`${server.baseUrl}/api/v1/agents/${agentId}/artifacts`, { method: 'POST', headers: auth(apiKey), body: artifactForm('x').form });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('60');
    expect(await admin('/artifacts')).toEqual([]);
    expect(await admin('/status-reports')).toEqual([]);
    await expect(admin('/agents/agt_nope')).rejects.toThrow(/404/);
    await expect(admin('/faults', { route: 'nowhere' })).rejects.toThrow(/400/);
  });
});

describe('scripts/control-plane.ts', () => {
  it('starts in-process: one JSON line on stdout, a seeded environment-wide deployment', async () => {
    let stdout = '';
    let stderr = '';
    const cli = await startControlPlaneCli(['--seed-deployment', join(dir, 'seed'), '--posture', 'prod'], {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
    });
    try {
      const lines = stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      const info = JSON.parse(lines[0] ?? '') as { baseUrl: string; enrollmentToken: string; environmentId: string; deploymentId: string };
      expect(info).toMatchObject({ baseUrl: cli.server.baseUrl, posture: 'prod', environmentId: cli.server.cp.defaultEnvironment.environmentId });
      expect(stderr).toContain('listening on');
      // An agent enrolled later gets the seeded deployment, with an approval credential (prod).
      const { agentId, apiKey } = cli.server.cp.createAgent();
      const dep = (await (await fetch(`${info.baseUrl}/api/v1/agents/${agentId}/deployment`, { headers: auth(apiKey) })).json()) as { deployment_id: string; approval_credential: string | null };
      expect(dep.deployment_id).toBe(info.deploymentId);
      expect(typeof dep.approval_credential).toBe('string');
    } finally {
      await cli.close();
    }
  });

  it('runs as a process and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/control-plane.ts', '--port', '0'], { cwd: join(import.meta.dirname, '..', '..'), stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const first = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
      const info = JSON.parse(String(first.value)) as { baseUrl: string };
      expect((await fetch(`${info.baseUrl}/healthz`)).status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
