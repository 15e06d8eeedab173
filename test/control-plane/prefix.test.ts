import { describe, expect, it } from 'vitest';
import { buildBundle } from './bundles.js';
import { setupControlPlane } from './vitest.js';

// A base URL with a path prefix (a gateway mount point): every route lives under it.
const { cp, baseUrl } = setupControlPlane({ baseUrl: 'https://gw.example.test/byteor' });

describe('a base URL with a path prefix', () => {
  it('serves the API under the prefix and 404s outside it', async () => {
    expect((await fetch(`${baseUrl}/healthz`)).status).toBe(200);
    expect((await fetch('https://gw.example.test/healthz')).status).toBe(404);
    const { agentId, apiKey } = cp.createAgent();
    const dep = cp.publishDeployment({ agentId, bundle: await buildBundle({ a: '1' }) });
    // bundle.url is relative to the base URL, so it does not repeat the prefix.
    expect(dep.bundle.url.startsWith('/api/v1/')).toBe(true);
    const res = await fetch(`${baseUrl}${dep.bundle.url}`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(res.status).toBe(200);
  });
});
