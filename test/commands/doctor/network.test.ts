import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDns, checkTls, judgeTls, type LookupAll } from '../../../src/commands/doctor/network.js';
import { proxyFor } from '../../../src/commands/doctor/proxy.js';

// A self-signed certificate for api.byteor.test, localhost and 127.0.0.1 (see test/fixtures/tls/README.md).
const CERT = readFileSync(new URL('../../fixtures/tls/server.crt', import.meta.url));
const KEY = readFileSync(new URL('../../fixtures/tls/server.key', import.meta.url));

const direct = proxyFor(new URL('https://x'), {});
/** Resolves every name to the loopback TLS server: no real DNS. */
const loopback: LookupAll = async () => [{ address: '127.0.0.1', family: 4 }];

let tlsServer: TlsServer;
let tlsPort: number;
let plainServer: NetServer;
let plainPort: number;
let proxy: HttpServer;
let proxyPort: number;
const tunnels: string[] = [];
const sockets = new Set<Socket>();

function listen(server: NetServer | HttpServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

beforeAll(async () => {
  tlsServer = createTlsServer({ cert: CERT, key: KEY }, (socket) => socket.end());
  tlsServer.on('tlsClientError', () => undefined);
  tlsPort = await listen(tlsServer);
  // Speaks plain text where TLS is expected (a captive portal, a plain-http port).
  plainServer = createNetServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  plainPort = await listen(plainServer);
  // A CONNECT proxy that only tunnels to loopback, and wants credentials from "alice".
  proxy = createHttpServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req, client: Socket) => {
    const auth = req.headers['proxy-authorization'];
    if (auth !== `Basic ${Buffer.from('alice:pw').toString('base64')}`) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n');
      return;
    }
    tunnels.push(req.url ?? '');
    const port = Number((req.url ?? '').split(':').pop());
    const upstream = netConnect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
  });
  proxyPort = await listen(proxy);
  for (const server of [tlsServer, plainServer, proxy]) {
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
  }
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all([tlsServer, plainServer, proxy].map((server) => new Promise((resolve) => server.close(resolve))));
});

describe('doctor: DNS', () => {
  it('passes with every address the resolver returns', async () => {
    const lookup: LookupAll = async () => [
      { address: '203.0.113.7', family: 4 },
      { address: '2001:db8::7', family: 6 },
    ];
    const [result] = await checkDns(new URL('https://api.byteor.com'), direct, lookup);
    expect(result).toEqual({ name: 'DNS', status: 'pass', detail: 'api.byteor.com → 203.0.113.7, 2001:db8::7' });
  });

  it('fails a name that does not resolve', async () => {
    const lookup: LookupAll = () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }));
    const [result] = await checkDns(new URL('https://api.byteor.cmo'), direct, lookup);
    expect(result).toMatchObject({ status: 'fail', detail: 'api.byteor.cmo does not resolve (no such name)' });
  });

  it('fails a lookup that hangs, after the timeout', async () => {
    const [result] = await checkDns(new URL('https://api.byteor.com'), direct, () => new Promise(() => undefined), 50);
    expect(result).toMatchObject({ status: 'fail', detail: 'api.byteor.com does not resolve (the lookup timed out)' });
  });

  it('behind a proxy, only the proxy host must resolve here', async () => {
    const viaProxy = proxyFor(new URL('https://api.byteor.com'), { HTTPS_PROXY: 'http://proxy.corp:3128' });
    const lookup: LookupAll = async (host) => {
      if (host === 'proxy.corp') return [{ address: '10.0.0.1', family: 4 }];
      throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
    };
    const results = await checkDns(new URL('https://api.byteor.com'), viaProxy, lookup);
    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['DNS', 'pass'],
      ['DNS (proxy)', 'pass'],
    ]);
    const broken = await checkDns(new URL('https://api.byteor.com'), viaProxy, () => Promise.reject(Object.assign(new Error('nope'), { code: 'ENOTFOUND' })));
    expect(broken[1]).toMatchObject({ name: 'DNS (proxy)', status: 'fail', fix: expect.stringMatching(/^check HTTPS_PROXY/) as unknown });
  });

  it('needs no lookup for an IP address', async () => {
    const [result] = await checkDns(new URL('http://127.0.0.1:8080'), direct, () => Promise.reject(new Error('must not be called')));
    expect(result?.status).toBe('pass');
  });
});

describe('doctor: TLS', () => {
  const url = (): URL => new URL(`https://api.byteor.test:${tlsPort}`);
  const base = { proxy: direct, lookup: loopback, allowInsecureHttp: false };

  it('passes a handshake with a trusted certificate for the host name (SNI)', async () => {
    const result = await checkTls({ ...base, url: url(), ca: CERT });
    expect(result.status).toBe('pass');
    expect(result.detail).toMatch(/^TLSv1\.3 with api\.byteor\.test:\d+: certificate for api\.byteor\.test, byteor-agent tests, issued by api\.byteor\.test/);
  });

  it('fails a self-signed certificate and explains it as classify.ts does', async () => {
    const result = await checkTls({ ...base, url: url() });
    expect(result.status).toBe('fail');
    expect(result.detail).toContain('the server certificate is self-signed (DEPTH_ZERO_SELF_SIGNED_CERT)');
    expect(result.fix).toMatch(/NODE_EXTRA_CA_CERTS/);
  });

  it('fails a certificate that does not name the host', async () => {
    const result = await checkTls({ ...base, url: new URL(`https://wrong.byteor.test:${tlsPort}`), ca: CERT });
    expect(result.status).toBe('fail');
    expect(result.detail).toContain('does not match the host name (ERR_TLS_CERT_ALTNAME_INVALID)');
  });

  it('fails when nothing listens, and when the port does not speak TLS', async () => {
    const closed = await checkTls({ ...base, url: new URL('https://api.byteor.test:1'), ca: CERT });
    expect(closed).toMatchObject({ status: 'fail', detail: expect.stringContaining('connection refused (ECONNREFUSED)') as unknown });
    const plain = await checkTls({ ...base, url: new URL(`https://api.byteor.test:${plainPort}`), ca: CERT });
    expect(plain.status).toBe('fail');
    expect(plain.detail).toMatch(/handshake with api\.byteor\.test:\d+ failed/);
  });

  it('shakes hands through a CONNECT proxy, with its credentials', async () => {
    const viaProxy = proxyFor(url(), { HTTPS_PROXY: `http://alice:pw@127.0.0.1:${proxyPort}` });
    const result = await checkTls({ ...base, proxy: viaProxy, url: url(), ca: CERT });
    expect(result.status).toBe('pass');
    expect(tunnels).toContain(`api.byteor.test:${tlsPort}`);
  });

  it('fails when the proxy refuses the tunnel', async () => {
    const viaProxy = proxyFor(url(), { HTTPS_PROXY: `http://127.0.0.1:${proxyPort}` });
    const result = await checkTls({ ...base, proxy: viaProxy, url: url(), ca: CERT });
    expect(result).toMatchObject({ status: 'fail', detail: expect.stringContaining('the proxy refused the tunnel: 407') as unknown });
  });

  it('is not used for plain http to loopback, and warns for plain http elsewhere', async () => {
    expect(await checkTls({ ...base, url: new URL('http://127.0.0.1:8080') })).toMatchObject({ status: 'pass', detail: expect.stringMatching(/^not used: plain http:\/\/ to the loopback host/) as unknown });
    expect((await checkTls({ ...base, url: new URL('http://10.0.0.5'), allowInsecureHttp: true })).status).toBe('warn');
  });

  it('warns about a certificate that expires within two weeks, and explains an expired one', () => {
    const now = Date.parse('2026-12-04T00:00:00Z');
    const ok = { protocol: 'TLSv1.3', subject: 'api', issuer: 'ca', validTo: 'Dec 10 00:00:00 2026 GMT' };
    expect(judgeTls(new URL('https://api'), { ok }, now).status).toBe('warn');
    const expired = judgeTls(new URL('https://api'), { error: Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' }) }, now);
    expect(expired).toMatchObject({ status: 'fail', fix: expect.stringMatching(/clock/) as unknown });
    expect(expired.detail).toContain('has expired (or this host clock is wrong)');
  });
});
