import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildBundle, listBundle, readBundleFile } from './bundles.js';
import { sha256Hex } from './crypto.js';
import { setupControlPlane } from './vitest.js';

const { cp, baseUrl } = setupControlPlane();

/** An agent with a deployment whose bundle is `size` random bytes (served as is; no tar needed here). */
function published(size = 200_000, bundleUrl?: 'cross-origin') {
  const { agentId, apiKey } = cp.createAgent();
  const bundle = randomBytes(size);
  const dep = cp.publishDeployment({ agentId, bundle, ...(bundleUrl === undefined ? {} : { bundleUrl }) });
  const url = dep.bundle.url.startsWith('/') ? `${baseUrl}${dep.bundle.url}` : dep.bundle.url;
  return { agentId, apiKey, bundle, dep, url };
}

function get(url: string, apiKey: string | undefined, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { headers: { ...(apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` }), ...headers } });
}

async function bytesOf(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

describe('bundle download (API.md §4)', () => {
  it('streams the bundle with length, type and Accept-Ranges', async () => {
    const { apiKey, bundle, dep, url } = published();
    const res = await get(url, apiKey);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/gzip');
    expect(res.headers.get('content-length')).toBe(String(bundle.length));
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    const body = await bytesOf(res);
    expect(sha256Hex(body)).toBe(dep.bundle.sha256);
    expect(cp.requestsTo('bundle')).toMatchObject([{ status: 200, method: 'GET' }]);
  });

  it('answers a resume with 206 and Content-Range, past the end with 416', async () => {
    const { apiKey, bundle, url } = published(100_000);
    const res = await get(url, apiKey, { range: 'bytes=70000-' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 70000-99999/100000`);
    expect(res.headers.get('content-length')).toBe('30000');
    expect((await bytesOf(res)).equals(bundle.subarray(70000))).toBe(true);
    const past = await get(url, apiKey, { range: 'bytes=100000-' });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe('bytes */100000');
  });

  it('ignores the Range when the ignoreRange fault says so', async () => {
    const { apiKey, bundle, url } = published(10_000);
    cp.fault('bundle', { ignoreRange: true });
    const res = await get(url, apiKey, { range: 'bytes=5000-' });
    expect(res.status).toBe(200);
    expect((await bytesOf(res)).equals(bundle)).toBe(true);
    expect((await get(url, apiKey, { range: 'bytes=5000-' })).status).toBe(206);
  });

  it('fails the body stream after truncateAfterBytes (a connection lost mid-body)', async () => {
    const { apiKey, url } = published(300_000);
    cp.fault('bundle', { truncateAfterBytes: 100_000 });
    const res = await get(url, apiKey);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let received = 0;
    await expect(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          received += value.byteLength;
        }
      })(),
    ).rejects.toThrow();
    expect(received).toBe(100_000);
  });

  it('needs the runtime key of that agent and agent:deployment_read', async () => {
    const { agentId, apiKey, url } = published(1000);
    expect((await get(url, undefined)).status).toBe(401);
    expect((await get(url, cp.createAgent().apiKey)).status).toBe(401);
    cp.setAgentScopes(agentId, ['agent:heartbeat']);
    expect((await get(url, apiKey)).status).toBe(403);
  });

  it('serves an environment-wide bundle to agents of that environment only', async () => {
    const dep = cp.publishDeployment({ bundle: Buffer.from('bytes') });
    const mine = cp.createAgent();
    expect((await get(`${baseUrl}${dep.bundle.url}`, mine.apiKey)).status).toBe(200);
    const other = cp.createAgent({ environmentId: cp.createEnvironment().environmentId });
    const res = await get(`${baseUrl}${dep.bundle.url}`, other.apiKey);
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: 'wrong_environment' } });
  });
});

describe('cross-origin (pre-signed) bundle URLs', () => {
  it('are absolute on the storage origin and served without auth, ranges included', async () => {
    const { bundle, url } = published(50_000, 'cross-origin');
    expect(url).toMatch(/^https:\/\/storage\.byteor\.test\/_storage\/bundles\/dep_[0-9A-Z]+\/bundle\.tar\.gz\?X-Sig=[0-9a-f]{64}$/);
    const res = await get(url, undefined);
    expect(res.status).toBe(200);
    expect((await bytesOf(res)).equals(bundle)).toBe(true);
    const part = await get(url, undefined, { range: 'bytes=49000-' });
    expect(part.status).toBe(206);
    expect((await bytesOf(part)).length).toBe(1000);
  });

  it('refuse a request that carries Authorization with 400, and a wrong signature with 403', async () => {
    const { apiKey, url } = published(1000, 'cross-origin');
    const withAuth = await get(url, apiKey);
    expect(withAuth.status).toBe(400);
    expect(await withAuth.text()).toContain('Only one auth mechanism allowed');
    expect(cp.requestsTo('bundle')[0]?.headers.authorization).toBe(`Bearer ${apiKey}`);
    const forged = await get(url.replace(/X-Sig=[0-9a-f]{4}/, 'X-Sig=0000'), undefined);
    expect(forged.status).toBe(403);
  });
});

describe('bundle helpers', () => {
  it('build deterministic gzip tars of files and parent directories', async () => {
    const files = { 'spec.kv': 'a=1\n', 'conf/deep/app.yaml': Buffer.from('x: 1\n'), 'empty/': '' };
    const one = await buildBundle(files);
    const two = await buildBundle({ 'empty/': '', 'conf/deep/app.yaml': 'x: 1\n', 'spec.kv': 'a=1\n' });
    expect(one.equals(two)).toBe(true);
    expect(listBundle(one).map((entry) => [entry.path, entry.type])).toEqual([
      ['conf/', 'Directory'],
      ['conf/deep/', 'Directory'],
      ['conf/deep/app.yaml', 'File'],
      ['empty/', 'Directory'],
      ['spec.kv', 'File'],
    ]);
    expect(readBundleFile(one, 'spec.kv')?.toString()).toBe('a=1\n');
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}.txt`;
    expect(readBundleFile(await buildBundle({ [long]: 'deep' }), long)?.toString()).toBe('deep');
  });

  it('refuse unsafe paths', async () => {
    await expect(buildBundle({ '../x': '1' })).rejects.toThrow(/relative/);
    await expect(buildBundle({ '/etc/x': '1' })).rejects.toThrow(/relative/);
  });
});
