import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_ARTIFACT_BYTES } from '../../src/api/types.js';
import { artifactForm } from './fixtures.js';
import { setupControlPlane } from './vitest.js';

const { cp, baseUrl } = setupControlPlane();

afterEach(() => {
  vi.useRealTimers();
});

function upload(agent: { agentId: string; apiKey: string }, body: NonNullable<RequestInit['body']>, headers: Record<string, string> = {}): Promise<Response> {
  const init: RequestInit & { duplex?: 'half' } = { method: 'POST', headers: { authorization: `Bearer ${agent.apiKey}`, ...headers }, body };
  if (body instanceof ReadableStream) init.duplex = 'half';
  return fetch(`${baseUrl}/api/v1/agents/${agent.agentId}/artifacts`, init);
}

describe('artifact upload (API.md §6)', () => {
  it('stores a new artifact (201) and deduplicates the same content per environment (200)', async () => {
    const agent = cp.createAgent();
    const { form, metadata } = artifactForm('incident bytes');
    const created = await upload(agent, form);
    expect(created.status).toBe(201);
    const body = (await created.json()) as { artifact_id: string; sha256: string; deduplicated: boolean };
    expect(body).toEqual({ artifact_id: expect.stringMatching(/^art_/), sha256: metadata.sha256, deduplicated: false });
    expect(cp.artifacts).toEqual([
      expect.objectContaining({
        artifactId: body.artifact_id,
        agentId: agent.agentId,
        type: 'incident_bundle',
        sha256: metadata.sha256,
        sizeBytes: 14,
        filename: metadata.filename,
        contentType: 'application/gzip',
        labels: { trigger: 'watchdog' },
        capturedAt: metadata.captured_at,
        dedupCount: 0,
      }),
    ]);

    // Another agent of the same environment, same bytes: deduplicated.
    const again = await upload(cp.createAgent(), artifactForm('incident bytes', { type: 'snapshot' }).form);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ artifact_id: body.artifact_id, sha256: metadata.sha256, deduplicated: true });
    expect(cp.artifacts[0]?.dedupCount).toBe(1);
    // Another environment: stored anew.
    const elsewhere = cp.createAgent({ environmentId: cp.createEnvironment().environmentId });
    expect((await upload(elsewhere, artifactForm('incident bytes').form)).status).toBe(201);
    expect(cp.requestsTo('artifacts').map((r) => r.status)).toEqual([201, 200, 201]);
    expect(cp.requestsTo('artifacts')[0]?.json).toEqual(metadata);
  });

  it('answers 400 hash_mismatch when the bytes do not hash to metadata.sha256', async () => {
    const res = await upload(cp.createAgent(), artifactForm('real bytes', { sha256: 'a'.repeat(64) }).form);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'hash_mismatch' } });
    expect(cp.artifacts).toHaveLength(0);
  });

  it('answers 400 to a size that does not match the bytes', async () => {
    const res = await upload(cp.createAgent(), artifactForm('real bytes', { size_bytes: 99 }).form);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'size_mismatch' } });
  });

  it('answers 400 unknown_type to a type outside the three', async () => {
    const res = await upload(cp.createAgent(), artifactForm('x', { type: 'core_dump' }).form);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'unknown_type' } });
  });

  it('answers 400 to parts in the wrong order or missing', async () => {
    const agent = cp.createAgent();
    const { metadata } = artifactForm('x');
    const reversed = new FormData();
    reversed.append('file', new Blob(['x']), 'x.bin');
    reversed.append('metadata', JSON.stringify(metadata));
    expect(await (await upload(agent, reversed)).json()).toMatchObject({ error: { code: 'invalid_multipart' } });
    const onlyMetadata = new FormData();
    onlyMetadata.append('metadata', JSON.stringify(metadata));
    expect((await upload(agent, onlyMetadata)).status).toBe(400);
    expect((await upload(agent, 'plain text', { 'content-type': 'text/plain' })).status).toBe(415);
  });

  it('answers 413 to a declared Content-Length over 64 MiB without reading the body', async () => {
    const agent = cp.createAgent();
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 1;
        controller.enqueue(new Uint8Array(1024));
      },
    });
    const res = await upload(agent, body, { 'content-type': 'multipart/form-data; boundary=b', 'content-length': String(70 * 1024 * 1024) });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(pulled).toBeLessThan(5);
  });

  it('answers 413 once a streamed file passes 64 MiB, keeping only a count', async () => {
    const agent = cp.createAgent();
    const head = Buffer.from(
      '--b\r\nContent-Disposition: form-data; name="metadata"\r\nContent-Type: application/json\r\n\r\n' +
        JSON.stringify(artifactForm('x').metadata) +
        '\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n',
    );
    const chunk = new Uint8Array(1024 * 1024);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(head));
      },
      // Never ends: only a server that stops reading by itself can answer.
      pull(controller) {
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await upload(agent, body, { 'content-type': 'multipart/form-data; boundary=b' });
    expect(res.status).toBe(413);
    expect(sent).toBeGreaterThan(MAX_ARTIFACT_BYTES);
    expect(sent).toBeLessThan(MAX_ARTIFACT_BYTES + 8 * chunk.length);
    expect(cp.artifacts).toHaveLength(0);
  });

  it('accepts a file of exactly 64 MiB, streamed', async () => {
    const agent = cp.createAgent();
    const file = new Uint8Array(MAX_ARTIFACT_BYTES);
    const res = await upload(agent, artifactForm(file, { type: 'snapshot', filename: 'snap.bin' }).form);
    expect(res.status).toBe(201);
    expect(cp.artifacts[0]?.sizeBytes).toBe(MAX_ARTIFACT_BYTES);
    expect(cp.requestsTo('artifacts')[0]?.bodyBytes).toBeGreaterThan(MAX_ARTIFACT_BYTES);
  });

  it('enforces a per-key budget with 429, Retry-After and X-RateLimit-*', async () => {
    vi.useFakeTimers({ now: Date.UTC(2026, 11, 4, 19, 0, 0) });
    const start = Date.now();
    cp.setArtifactBudget({ limit: 2, windowMs: 60_000 });
    const agent = cp.createAgent();
    const first = await upload(agent, artifactForm('one').form);
    expect(first.status).toBe(201);
    expect(first.headers.get('x-ratelimit-remaining')).toBe('1');
    expect((await upload(agent, artifactForm('one').form)).status).toBe(200);

    vi.setSystemTime(start + 20_000);
    const limited = await upload(agent, artifactForm('two').form);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('40');
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(limited.headers.get('x-ratelimit-reset')).toBe(String((start + 60_000) / 1000));
    expect(await limited.json()).toMatchObject({ error: { code: 'rate_limited' } });
    // The budget is per key: another agent is unaffected.
    expect((await upload(cp.createAgent(), artifactForm('two').form)).status).toBe(201);

    vi.setSystemTime(start + 60_000);
    expect((await upload(agent, artifactForm('three').form)).status).toBe(201);
  });
});
