import { describe, expect, it } from 'vitest';
import { isLoopbackHost, joinApiUrl, parseBaseUrl } from '../../src/config/base-url.js';

function base(raw: string, insecure = false): URL {
  const parsed = parseBaseUrl(raw, insecure);
  if ('problem' in parsed) throw new Error(parsed.problem);
  return parsed.url;
}

describe('base URL joining (API.md general rules)', () => {
  it('appends paths to a bare origin, with or without a trailing slash', () => {
    expect(joinApiUrl(base('https://api.byteor.com'), '/api/v1/agents/a/heartbeat').href).toBe('https://api.byteor.com/api/v1/agents/a/heartbeat');
    expect(joinApiUrl(base('https://api.byteor.com/'), '/healthz').href).toBe('https://api.byteor.com/healthz');
  });

  it('keeps a path prefix, and ignores its trailing slash', () => {
    expect(joinApiUrl(base('https://gw.example.com/byteor'), '/api/v1/x').href).toBe('https://gw.example.com/byteor/api/v1/x');
    expect(joinApiUrl(base('https://gw.example.com/byteor/'), '/api/v1/x').href).toBe('https://gw.example.com/byteor/api/v1/x');
  });

  it('keeps a query given with the path', () => {
    expect(joinApiUrl(base('https://gw.example.com/p'), '/x?a=1').href).toBe('https://gw.example.com/p/x?a=1');
  });
});

describe('the HTTPS rule', () => {
  it('allows http only to loopback hosts', () => {
    for (const host of ['127.0.0.1', '127.9.9.9', 'localhost', '[::1]']) expect('url' in parseBaseUrl(`http://${host}:8080`, false), host).toBe(true);
    for (const host of ['10.0.0.1', 'api.byteor.com', '128.0.0.1', '[::2]']) expect(parseBaseUrl(`http://${host}`, false)).toHaveProperty('problem');
  });

  it('allows http anywhere with the explicit insecure opt-in, and never other schemes', () => {
    expect('url' in parseBaseUrl('http://api.internal', true)).toBe(true);
    expect(parseBaseUrl('ftp://api.byteor.com', true)).toHaveProperty('problem', expect.stringMatching(/only https/));
  });

  it('recognises loopback names', () => {
    expect(isLoopbackHost('LOCALHOST')).toBe(true);
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('localhost.evil.com')).toBe(false);
  });
});

describe('bundle URLs (API.md §3: relative to the base URL, or absolute)', () => {
  it('resolves relative URLs under the base path prefix and refuses unparseable ones', async () => {
    const { Transport } = await import('../../src/api/transport.js');
    const { PermanentError } = await import('../../src/api/errors.js');
    const t = new Transport({ baseUrl: base('https://gw.example.com/byteor') });
    expect(t.resolve('/api/v1/x')?.href).toBe('https://gw.example.com/byteor/api/v1/x');
    expect(t.resolve('api/v1/x')?.href).toBe('https://gw.example.com/byteor/api/v1/x');
    expect(t.resolve('https://storage.example.com/b?sig=1')?.href).toBe('https://storage.example.com/b?sig=1');
    expect(t.resolve('https://[bad')).toBeUndefined();
    await expect(t.send({ method: 'GET', target: 'https://[bad' })).rejects.toBeInstanceOf(PermanentError);
    await expect(t.send({ method: 'GET', target: 'ftp://storage.example.com/b' })).rejects.toThrow(/only https/);
  });
});
