import { describe, expect, it } from 'vitest';
import { judgeProxy, proxyFor } from '../../../src/commands/doctor/proxy.js';

const api = new URL('https://api.byteor.com');

describe('doctor: proxy', () => {
  it('goes direct when no proxy variable is set', () => {
    expect(proxyFor(api, {})).toEqual({ kind: 'direct', reason: 'no_proxy_set' });
    expect(judgeProxy(api, {}, [])).toMatchObject({ status: 'pass', detail: expect.stringMatching(/reached directly/) as unknown });
  });

  it('uses HTTPS_PROXY for https, and falls back to HTTP_PROXY as undici does', () => {
    expect(proxyFor(api, { HTTPS_PROXY: 'http://p1:3128', HTTP_PROXY: 'http://p2:3128' })).toMatchObject({ kind: 'proxy', variable: 'HTTPS_PROXY', proxyUrl: 'http://p1:3128' });
    expect(proxyFor(api, { HTTP_PROXY: 'http://p2:3128' })).toMatchObject({ kind: 'proxy', variable: 'HTTP_PROXY' });
    expect(proxyFor(new URL('http://127.0.0.1:8080'), { HTTPS_PROXY: 'http://p1:3128' })).toMatchObject({ kind: 'direct' });
  });

  it('prefers the lowercase variable; an empty lowercase one disables the proxy', () => {
    expect(proxyFor(api, { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:1' })).toMatchObject({ variable: 'https_proxy', proxyUrl: 'http://lower:1' });
    expect(proxyFor(api, { https_proxy: '', HTTPS_PROXY: 'http://upper:1' })).toMatchObject({ kind: 'direct' });
  });

  it('matches NO_PROXY entries: exact host, parent domain with or without a dot, port, and *', () => {
    const env = (noProxy: string): NodeJS.ProcessEnv => ({ HTTPS_PROXY: 'http://p:3128', NO_PROXY: noProxy });
    expect(proxyFor(api, env('api.byteor.com'))).toMatchObject({ kind: 'direct', entry: 'api.byteor.com' });
    expect(proxyFor(api, env('localhost, .byteor.com'))).toMatchObject({ kind: 'direct', entry: '.byteor.com' });
    expect(proxyFor(api, env('byteor.com'))).toMatchObject({ kind: 'direct' });
    expect(proxyFor(api, env('*.byteor.com'))).toMatchObject({ kind: 'direct' });
    expect(proxyFor(api, env('notbyteor.com'))).toMatchObject({ kind: 'proxy' });
    expect(proxyFor(api, env('api.byteor.com:8443'))).toMatchObject({ kind: 'proxy' });
    expect(proxyFor(api, env('api.byteor.com:443'))).toMatchObject({ kind: 'direct' });
    expect(proxyFor(api, env('*'))).toMatchObject({ kind: 'direct', entry: '*' });
  });

  it('names the proxy without its credentials', () => {
    const result = judgeProxy(api, { HTTPS_PROXY: 'http://alice:s3cret@proxy.corp:3128' }, []);
    expect(result.status).toBe('pass');
    expect(result.detail).toBe('api.byteor.com is reached through http://***@proxy.corp:3128/ (HTTPS_PROXY)');
    expect(result.detail).not.toContain('s3cret');
  });

  it('says which proxy variables came from the env file', () => {
    const result = judgeProxy(api, { HTTPS_PROXY: 'http://proxy.corp:3128' }, ['HTTPS_PROXY']);
    expect(result.status).toBe('pass');
    expect(result.detail).toBe('api.byteor.com is reached through http://proxy.corp:3128 (HTTPS_PROXY) (HTTPS_PROXY from the env file)');
  });

  it('warns about a proxy that is not an http(s) URL', () => {
    expect(judgeProxy(api, { HTTPS_PROXY: 'proxy.corp:3128' }, []).status).toBe('warn');
  });
});
