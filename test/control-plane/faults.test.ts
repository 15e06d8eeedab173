import { afterEach, describe, expect, it, vi } from 'vitest';
import { sampleHeartbeat } from './fixtures.js';
import { setupControlPlane } from './vitest.js';

const { cp, baseUrl } = setupControlPlane();

afterEach(() => {
  vi.useRealTimers();
});

function heartbeat(agent: { agentId: string; apiKey: string }, init: { signal?: AbortSignal; sequence?: number } = {}): Promise<Response> {
  return fetch(`${baseUrl}/api/v1/agents/${agent.agentId}/heartbeat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${agent.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(sampleHeartbeat({ sequence: init.sequence ?? 1 })),
    signal: init.signal,
  });
}

describe('faults', () => {
  it('answer a status for the next `times` requests, then the route works again', async () => {
    const agent = cp.createAgent();
    cp.fault('heartbeat', { status: 503, times: 2, retryAfter: '7' });
    const first = await heartbeat(agent, { sequence: 1 });
    expect(first.status).toBe(503);
    expect(first.headers.get('retry-after')).toBe('7');
    expect(await first.json()).toMatchObject({ error: { code: 'injected_fault' } });
    expect((await heartbeat(agent, { sequence: 2 })).status).toBe(503);
    expect((await heartbeat(agent, { sequence: 3 })).status).toBe(200);
    // Faulted requests are recorded with their bodies; only the real one reached the state.
    expect(cp.requestsTo('heartbeat').map((r) => [r.status, (r.json as { sequence: number }).sequence])).toEqual([
      [503, 1],
      [503, 2],
      [200, 3],
    ]);
    expect(cp.heartbeatsOf(agent.agentId)).toHaveLength(1);
    expect(cp.pendingFaults()).toEqual([]);
  });

  it('serve a custom body verbatim (a proxy HTML page)', async () => {
    const agent = cp.createAgent();
    cp.fault('deployment', { status: 502, body: '<html><body>Bad Gateway</body></html>' });
    const res = await fetch(`${baseUrl}/api/v1/agents/${agent.agentId}/deployment`, { headers: { authorization: `Bearer ${agent.apiKey}` } });
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toContain('text/html');
    expect(await res.text()).toContain('Bad Gateway');
  });

  it('drop the connection (a network error), recorded with status 0', async () => {
    const agent = cp.createAgent();
    cp.fault('heartbeat', { drop: true });
    await expect(heartbeat(agent)).rejects.toThrow(TypeError);
    expect(cp.requestsTo('heartbeat')[0]?.status).toBe(0);
    expect((await heartbeat(agent)).status).toBe(200);
  });

  it("'*' applies to any route; a route's own fault comes first", async () => {
    const agent = cp.createAgent();
    cp.fault('*', { status: 500, times: Infinity });
    cp.fault('healthz', { status: 418 });
    expect((await fetch(`${baseUrl}/healthz`)).status).toBe(418);
    expect((await fetch(`${baseUrl}/healthz`)).status).toBe(500);
    expect((await heartbeat(agent)).status).toBe(500);
    cp.clearFaults();
    expect((await heartbeat(agent)).status).toBe(200);
  });

  it('delay the answer on (fake) timers', async () => {
    vi.useFakeTimers();
    const agent = cp.createAgent();
    cp.fault('heartbeat', { delayMs: 10_000 });
    let settled = false;
    const pending = heartbeat(agent).then((res) => {
      settled = true;
      return res;
    });
    await vi.advanceTimersByTimeAsync(9_999);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect((await pending).status).toBe(200);
  });

  it('delay then answer a status, when both are given', async () => {
    vi.useFakeTimers();
    const agent = cp.createAgent();
    cp.fault('heartbeat', { delayMs: 5_000, status: 504 });
    const pending = heartbeat(agent);
    await vi.advanceTimersByTimeAsync(5_000);
    expect((await pending).status).toBe(504);
  });

  it('a delayed request aborted by the client ends at once and leaves no timer behind', async () => {
    vi.useFakeTimers();
    const agent = cp.createAgent();
    cp.fault('heartbeat', { delayMs: 60_000 });
    const controller = new AbortController();
    const pending = heartbeat(agent, { signal: controller.signal });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(vi.getTimerCount()).toBe(1);
    controller.abort();
    await expect(pending).rejects.toThrow();
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(cp.heartbeats).toHaveLength(0);
  });

  it('an outage drops every route until it ends', async () => {
    const agent = cp.createAgent();
    cp.outage(true);
    await expect(fetch(`${baseUrl}/healthz`)).rejects.toThrow();
    await expect(heartbeat(agent)).rejects.toThrow();
    cp.outage(false);
    expect((await fetch(`${baseUrl}/healthz`)).status).toBe(200);
    expect((await heartbeat(agent)).status).toBe(200);
  });
});

describe('health and common behaviour (API.md §8)', () => {
  it('/healthz and /readyz answer 200 unauthenticated; not ready is 503', async () => {
    expect((await fetch(`${baseUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${baseUrl}/readyz`)).status).toBe(200);
    cp.setReady(false);
    const res = await fetch(`${baseUrl}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: 'not_ready' } });
    expect((await fetch(`${baseUrl}/healthz`)).status).toBe(200);
  });

  it('stamps X-Request-Id and a Date from the control plane clock on every response', async () => {
    vi.useFakeTimers({ now: Date.UTC(2031, 0, 2, 3, 4, 5) });
    const res = await fetch(`${baseUrl}/api/v1/agents/agt_x/deployment`);
    expect(res.status).toBe(401);
    expect(res.headers.get('date')).toBe('Thu, 02 Jan 2031 03:04:05 GMT');
    const id = res.headers.get('x-request-id');
    expect(id).toMatch(/^req_[0-9A-Z]{20}$/);
    expect(cp.requests.at(-1)).toMatchObject({ id, route: 'deployment', status: 401, at: Date.UTC(2031, 0, 2, 3, 4, 5) });
  });

  it('answers 404 JSON to unknown paths and 405 to a wrong method', async () => {
    const missing = await fetch(`${baseUrl}/api/v1/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: 'not_found' } });
    expect(cp.requests.at(-1)?.route).toBe('unknown');
    const wrong = await fetch(`${baseUrl}/api/v1/agents/agt_x/heartbeat`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
  });

  it('answers 413 to a JSON body over 4 MiB', async () => {
    const agent = cp.createAgent();
    const res = await fetch(`${baseUrl}/api/v1/agents/${agent.agentId}/heartbeat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${agent.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ pad: 'x'.repeat(4 * 1024 * 1024) }),
    });
    expect(res.status).toBe(413);
  });

  it('reset() forgets agents, records and faults', async () => {
    const agent = cp.createAgent();
    cp.fault('heartbeat', { status: 500, times: Infinity });
    await heartbeat(agent);
    const oldEnv = cp.defaultEnvironment.environmentId;
    cp.reset();
    expect(cp.agents()).toEqual([]);
    expect(cp.requests).toEqual([]);
    expect(cp.pendingFaults()).toEqual([]);
    expect(cp.defaultEnvironment.environmentId).not.toBe(oldEnv);
  });
});
