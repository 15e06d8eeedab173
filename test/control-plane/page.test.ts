import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, enrollAgent } from '../../src/api/client.js';
import { Transport } from '../../src/api/transport.js';
import { buildBundle } from './bundles.js';
import { sha256Hex } from './crypto.js';
import { sampleEnrollBody, sampleHeartbeat } from './fixtures.js';
import { startControlPlaneServer, type ControlPlaneServer } from './http-server.js';
import { escapeHtml } from './page.js';

// Real HTTP on 127.0.0.1 (no msw): the page as a browser gets it.
let server: ControlPlaneServer;

beforeAll(async () => {
  server = await startControlPlaneServer();
});
afterEach(() => server.cp.reset());
afterAll(async () => {
  await server.close();
});

const HOSTILE = '<script>alert("x")</script>';

/** An agent enrolled and heartbeating through the agent's own client, as a real one would. */
async function enrolledAgent(): Promise<{ client: AgentClient; agentId: string }> {
  const { cp } = server;
  const env = cp.defaultEnvironment;
  const token = cp.issueEnrollmentToken();
  const transport = new Transport({ baseUrl: new URL(server.baseUrl) });
  const enrolled = await enrollAgent(transport, {
    orgId: env.orgId,
    projectId: env.projectId,
    environmentId: env.environmentId,
    token,
    idempotencyKey: '7f0c1f5e-4b7e-4c57-9d61-3c5c8d1b2a10',
    request: sampleEnrollBody({ name: 'web-01', labels: { region: 'eu-west-1', team: HOSTILE } }),
  });
  const client = new AgentClient({ baseUrl: new URL(server.baseUrl), agentId: enrolled.agent_id, apiKey: enrolled.api_key });
  return { client, agentId: enrolled.agent_id };
}

async function page(path = '/'): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(`${server.baseUrl}${path}`);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe('the control-plane page', () => {
  it('shows agents with name, escaped labels, last heartbeat and its age, status and problems', async () => {
    const { client, agentId } = await enrolledAgent();
    await client.heartbeat(sampleHeartbeat({ sequence: 3, status: 'degraded', problems: [{ code: 'scope_missing', message: 'runtime key lacks agent:artifact_upload <b>' }] }));
    const { status, headers, text } = await page();
    expect(status).toBe(200);
    expect(headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(text).toContain('<b>web-01</b>');
    expect(text).toContain(`<code>${agentId}</code>`);
    expect(text).toContain('<span class="tag">region=eu-west-1</span>');
    // The label is shown, as text: never as markup.
    expect(text).toContain('team=&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(text).not.toContain(HOSTILE);
    expect(text).toMatch(/\d+ s ago, #3, 1 received/);
    expect(text).toContain('<td class="warn">degraded</td>');
    expect(text).toContain('<code>scope_missing</code> runtime key lacks agent:artifact_upload &lt;b&gt;');
  });

  it('shows deployments with each agent activation state, and artifacts with type, size, hash and dedup count', async () => {
    const { client, agentId } = await enrolledAgent();
    const bundle = await buildBundle({ 'spec.kv': 'replicas=3\n' });
    const deployment = server.cp.publishDeployment({ agentId, bundle });
    await client.reportDeploymentStatus(deployment.deployment_id, { state: 'failed', bundle_sha256: deployment.bundle.sha256, reported_at: new Date().toISOString(), reason: 'digest_mismatch', message: 'sha256 differs' });
    const bytes = Buffer.from('incident bytes');
    const upload = (): ReturnType<AgentClient['uploadArtifact']> =>
      client.uploadArtifact({
        metadata: { type: 'incident_bundle', sha256: sha256Hex(bytes), size_bytes: bytes.length, captured_at: new Date().toISOString(), filename: 'incident-1.tar.gz', labels: {} },
        file: new Blob([bytes], { type: 'application/gzip' }),
      });
    await upload();
    expect((await upload()).deduplicated).toBe(true);

    const { text } = await page();
    expect(text).toContain(`<code>${escapeHtml(deployment.deployment_id)}</code> → agent ${agentId}`);
    expect(text).toContain(`bundle <code title="${deployment.bundle.sha256}">${deployment.bundle.sha256.slice(0, 12)}…</code>`);
    expect(text).toMatch(/<tr><td>web-01<\/td><td class="bad">failed<\/td>\s*<td>digest_mismatch <span class="dim">sha256 differs<\/span><\/td>/);
    expect(text).toContain('<h2>Artifacts (1)</h2>');
    expect(text).toMatch(new RegExp(`<tr><td>incident_bundle</td><td>incident-1\\.tar\\.gz</td><td>web-01</td><td>14 B</td>\\s*<td><code title="${sha256Hex(bytes)}">[0-9a-f]{12}…</code></td><td>1</td>`));
  });

  it('refreshes live: the page polls ?part=main, which renders the newest state', async () => {
    const first = await page();
    expect(first.text).toContain('No agent has enrolled yet.');
    expect(first.text).toContain("fetch('/?part=main'");
    await enrolledAgent();
    const part = await page('/?part=main');
    expect(part.text).not.toContain('<html');
    expect(part.text).toContain('<h2>Agents (1)</h2>');
  });

  it('loads nothing from elsewhere: no external URL, and a CSP that allows only its own inline code', async () => {
    const { text, headers } = await page();
    expect(text).not.toMatch(/\b(src|href)=/);
    expect(text).not.toMatch(/https?:\/\//);
    expect(headers.get('content-security-policy')).toMatch(/^default-src 'none'; style-src 'sha256-[^']+'; script-src 'sha256-[^']+'; connect-src 'self'/);
  });

  it('leaves the API and the admin API where they were', async () => {
    expect((await fetch(`${server.baseUrl}/readyz`)).status).toBe(200);
    expect((await fetch(`${server.adminUrl}/state`)).status).toBe(200);
    expect((await fetch(`${server.baseUrl}/`, { method: 'POST' })).status).toBe(404);
  });
});
