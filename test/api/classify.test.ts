import { describe, expect, it } from 'vitest';
import { classifyNetworkError, classifyStatus } from '../../src/api/classify.js';

describe('classifyStatus', () => {
  it('follows API.md status semantics', () => {
    expect(classifyStatus(200, false)).toBe('ok');
    expect(classifyStatus(304, false)).toBe('ok');
    expect(classifyStatus(401, false)).toBe('unauthorized');
    expect(classifyStatus(403, false)).toBe('forbidden');
    expect(classifyStatus(429, false)).toBe('rate_limited');
    expect(classifyStatus(503, true)).toBe('rate_limited');
    expect(classifyStatus(503, false)).toBe('transient');
    expect(classifyStatus(502, false)).toBe('transient');
    expect(classifyStatus(504, false)).toBe('transient');
    expect(classifyStatus(400, false)).toBe('permanent');
    expect(classifyStatus(404, false)).toBe('permanent');
    expect(classifyStatus(413, false)).toBe('permanent');
  });

  it('retries server trouble API.md does not list, but not 501', () => {
    expect(classifyStatus(500, false)).toBe('transient');
    expect(classifyStatus(408, false)).toBe('transient');
    expect(classifyStatus(501, false)).toBe('permanent');
  });
});

describe('classifyNetworkError', () => {
  const fetchFailed = (code: string): Error => new TypeError('fetch failed', { cause: Object.assign(new Error(`connect ${code}`), { code }) });

  it('tells network, timeout and TLS failures apart and explains them', () => {
    expect(classifyNetworkError(fetchFailed('ECONNREFUSED'))).toMatchObject({ kind: 'network', code: 'ECONNREFUSED', detail: 'connection refused' });
    expect(classifyNetworkError(fetchFailed('UND_ERR_SOCKET'))).toMatchObject({ kind: 'network', detail: 'the server closed the connection' });
    expect(classifyNetworkError(fetchFailed('UND_ERR_HEADERS_TIMEOUT'))).toMatchObject({ kind: 'timeout' });
    expect(classifyNetworkError(fetchFailed('CERT_HAS_EXPIRED'))).toMatchObject({ kind: 'tls', detail: expect.stringMatching(/expired/) });
    expect(classifyNetworkError(fetchFailed('SELF_SIGNED_CERT_IN_CHAIN'))).toMatchObject({ kind: 'tls', detail: expect.stringMatching(/NODE_EXTRA_CA_CERTS/) });
  });

  it('copes with errors that carry no cause', () => {
    expect(classifyNetworkError(new TypeError('Failed to fetch'))).toMatchObject({ kind: 'network', detail: 'Failed to fetch' });
  });
});
