import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { classifyNetworkError } from '../../api/classify.js';
import { isLoopbackHost } from '../../config/base-url.js';
import { formatDuration } from '../../util/format.js';
import { fail, pass, warn, type CheckResult } from './check.js';
import type { ProxyDecision } from './proxy.js';

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** dns.lookup with all: true (getaddrinfo, the resolver fetch itself uses); injectable for tests. */
export type LookupAll = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemLookup: LookupAll = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

export const NETWORK_TIMEOUT_MS = 10_000;

/** Rejects after `ms` with an ETIMEDOUT-coded error (so classifyNetworkError explains it). */
function timeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms / 1000} s`), { code: 'ETIMEDOUT' })), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

const errCode = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

const bracketless = (hostname: string): string => (hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname);

/** Pure: the DNS line from what the resolver answered. */
export function judgeDns(hostname: string, outcome: { addresses: ResolvedAddress[] } | { error: unknown }, viaProxy: boolean): CheckResult {
  const name = 'DNS';
  if ('addresses' in outcome) {
    if (outcome.addresses.length === 0) return fail(name, `${hostname} resolves to no address`, 'check /etc/resolv.conf and the DNS record of the API host');
    return pass(name, `${hostname} → ${outcome.addresses.map((a) => a.address).join(', ')}`);
  }
  const code = errCode(outcome.error);
  const why = code === 'ENOTFOUND' ? 'no such name' : code === 'EAI_AGAIN' ? 'the DNS server did not answer (temporary failure)' : code === 'ETIMEDOUT' ? 'the lookup timed out' : (code ?? String(outcome.error));
  if (viaProxy) {
    // The proxy resolves the API host itself; this host not knowing it is normal behind a proxy.
    return pass(name, `${hostname} does not resolve here (${why}), which is fine: requests go through the proxy, which resolves it`);
  }
  return fail(name, `${hostname} does not resolve (${why})`, 'check the spelling of BYTEOR_API_BASE_URL, /etc/resolv.conf (or systemd-resolved: resolvectl status) and that this host may use DNS');
}

/** Resolves the API host (and the proxy host when one applies): every address, as fetch would. */
export async function checkDns(url: URL, proxy: ProxyDecision, lookup: LookupAll = systemLookup, timeoutMs = NETWORK_TIMEOUT_MS): Promise<CheckResult[]> {
  const host = bracketless(url.hostname);
  const out: CheckResult[] = [];
  if (isIP(host) !== 0) out.push(pass('DNS', `${host} is an IP address: no lookup needed`));
  else {
    const outcome = await timeout(lookup(host), timeoutMs, `looking up ${host}`).then(
      (addresses) => ({ addresses }),
      (error: unknown) => ({ error }),
    );
    out.push(judgeDns(host, outcome, proxy.kind === 'proxy'));
  }
  if (proxy.kind === 'proxy') {
    let proxyHost: string | undefined;
    try {
      proxyHost = bracketless(new URL(proxy.proxyUrl).hostname);
    } catch {
      proxyHost = undefined;
    }
    if (proxyHost !== undefined && isIP(proxyHost) === 0) {
      const outcome = await timeout(lookup(proxyHost), timeoutMs, `looking up ${proxyHost}`).then(
        (addresses) => ({ addresses }),
        (error: unknown) => ({ error }),
      );
      const result = judgeDns(proxyHost, outcome, false);
      out.push({ ...result, name: 'DNS (proxy)', ...(result.fix === undefined ? {} : { fix: `check ${proxy.variable}; ${result.fix}` }) });
    }
  }
  return out;
}

export interface HandshakeOk {
  protocol: string | null;
  subject: string;
  issuer: string;
  validTo: string;
}

export interface HandshakeOptions {
  url: URL;
  proxy: ProxyDecision;
  /** Trusted CAs instead of Node's (tests); production uses Node's store plus NODE_EXTRA_CA_CERTS, as fetch does. */
  ca?: string | Buffer | undefined;
  lookup?: LookupAll;
  timeoutMs?: number;
}

function nameOf(entity: PeerCertificate['subject'] | undefined): string {
  if (entity === undefined) return 'unknown';
  const parts = [entity.CN, entity.O].filter((part): part is string => typeof part === 'string' && part !== '');
  return parts.length > 0 ? parts.join(', ') : 'unknown';
}

/** Opens a CONNECT tunnel through the proxy, as undici's ProxyAgent does for https:// targets. */
function tunnel(proxyUrl: URL, target: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: target };
    if (proxyUrl.username !== '' || proxyUrl.password !== '') {
      const credentials = `${decodeURIComponent(proxyUrl.username)}:${decodeURIComponent(proxyUrl.password)}`;
      headers['proxy-authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
    }
    const send = proxyUrl.protocol === 'https:' ? httpsRequest : httpRequest;
    const req: ClientRequest = send({ host: bracketless(proxyUrl.hostname), port: proxyUrl.port === '' ? (proxyUrl.protocol === 'https:' ? 443 : 80) : Number(proxyUrl.port), method: 'CONNECT', path: target, headers, timeout: timeoutMs });
    req.once('connect', (res, socket) => {
      if (res.statusCode === 200) resolve(socket);
      else {
        socket.destroy();
        reject(Object.assign(new Error(`the proxy refused the tunnel: ${res.statusCode ?? '?'} ${res.statusMessage ?? ''}`.trim()), { code: 'EPROXY', status: res.statusCode }));
      }
    });
    req.once('timeout', () => req.destroy(Object.assign(new Error('the proxy did not answer'), { code: 'ETIMEDOUT' })));
    req.once('error', reject);
    req.end();
  });
}

/** A TLS handshake with the API host exactly as fetch makes it: SNI, certificate and host-name checks. */
export function tlsHandshake(options: HandshakeOptions): Promise<HandshakeOk> {
  // Every socket opened (the proxy tunnel, the TLS socket) is closed however the race ends.
  const sockets: Socket[] = [];
  const timeoutMs = options.timeoutMs ?? NETWORK_TIMEOUT_MS;
  return timeout(
    handshake(options, timeoutMs, (socket) => sockets.push(socket)),
    timeoutMs,
    `the TLS handshake with ${options.url.host}`,
  ).finally(() => {
    for (const socket of sockets) socket.destroy();
  });
}

async function handshake(options: HandshakeOptions, timeoutMs: number, track: (socket: Socket) => unknown): Promise<HandshakeOk> {
  const { url, proxy } = options;
  const hostname = bracketless(url.hostname);
  const port = url.port === '' ? 443 : Number(url.port);
  const servername = isIP(hostname) === 0 ? hostname : undefined;

  let socket: Socket | undefined;
  let host = hostname;
  if (proxy.kind === 'proxy') {
    socket = await tunnel(new URL(proxy.proxyUrl), `${isIP(hostname) === 6 ? `[${hostname}]` : hostname}:${port}`, timeoutMs);
    track(socket);
  } else if (servername !== undefined) {
    // Resolve with the same lookup the DNS check used, and verify the certificate against the name.
    const addresses = await (options.lookup ?? systemLookup)(hostname);
    const first = addresses[0];
    if (first === undefined) throw Object.assign(new Error(`${hostname} resolves to no address`), { code: 'ENOTFOUND' });
    host = first.address;
  }

  const tunnelled = socket;
  return new Promise<HandshakeOk>((resolve, reject) => {
    const tls: TLSSocket = tlsConnect({
      ...(tunnelled === undefined ? { host, port } : { socket: tunnelled }),
      ...(servername === undefined ? {} : { servername }),
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      ALPNProtocols: ['http/1.1'],
      rejectUnauthorized: true,
    });
    tls.once('secureConnect', () => {
      const cert = tls.getPeerCertificate();
      const ok: HandshakeOk = { protocol: tls.getProtocol(), subject: nameOf(cert.subject), issuer: nameOf(cert.issuer), validTo: cert.valid_to };
      tls.destroy();
      resolve(ok);
    });
    tls.once('error', (err) => {
      tls.destroy();
      reject(err);
    });
    track(tls);
  });
}

/** Days a certificate still has; below this, a warning. */
const EXPIRY_WARN_MS = 14 * 24 * 3600 * 1000;

/** Pure: the TLS line from the handshake outcome. */
export function judgeTls(url: URL, outcome: { ok: HandshakeOk } | { error: unknown }, nowMs: number): CheckResult {
  const name = 'TLS';
  if ('ok' in outcome) {
    const { ok } = outcome;
    const left = Date.parse(ok.validTo) - nowMs;
    const summary = `${ok.protocol ?? 'TLS'} with ${url.host}: certificate for ${ok.subject}, issued by ${ok.issuer}, valid until ${ok.validTo}`;
    if (Number.isFinite(left) && left < EXPIRY_WARN_MS) {
      return warn(name, `${summary}: expires in ${formatDuration(Math.max(0, left))}`, 'renew the API certificate (the control plane operator), or check this host clock');
    }
    return pass(name, summary);
  }
  const code = errCode(outcome.error);
  if (code === 'EPROXY') {
    return fail(name, `${outcome.error instanceof Error ? outcome.error.message : String(outcome.error)} (CONNECT ${url.host})`, 'check the proxy address and credentials in HTTPS_PROXY, and that the proxy allows CONNECT to the API host on port 443');
  }
  const failure = classifyNetworkError(outcome.error);
  const detail = `${failure.detail}${failure.code === undefined ? '' : ` (${failure.code})`}`;
  if (failure.kind === 'tls') {
    return fail(name, `the handshake with ${url.host} failed: ${detail}`, tlsFix(failure.code));
  }
  return fail(name, `cannot open a connection to ${url.host}: ${detail}`, 'check the firewall (outbound 443 to the API host), the proxy settings, and that BYTEOR_API_BASE_URL names the right host and port');
}

function tlsFix(code: string | undefined): string {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return 'check this host clock (timedatectl; enable NTP), then the certificate itself';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'check BYTEOR_API_BASE_URL names the API host itself (not an alias the certificate does not cover); a TLS-intercepting proxy must present a certificate for it';
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return 'behind a TLS-intercepting proxy or with a private CA: give its CA certificate to the service with NODE_EXTRA_CA_CERTS=/path/ca.pem (systemctl edit byteor-agent → Environment=), never by disabling verification';
    default:
      return 'something between this host and the API speaks something other than TLS on that port (a captive portal or plain-http proxy?): check the URL and the network path';
  }
}

/** The TLS line: a real handshake for https://, a note for plain http://. */
export async function checkTls(options: HandshakeOptions & { allowInsecureHttp: boolean; now?: () => number }): Promise<CheckResult> {
  const { url } = options;
  if (url.protocol === 'http:') {
    if (isLoopbackHost(url.hostname)) return pass('TLS', `not used: plain http:// to the loopback host ${url.hostname} (development)`);
    return warn('TLS', `not used: plain http:// to ${url.hostname} (--insecure-http): the runtime key travels unencrypted`, 'use the https:// API origin');
  }
  const outcome = await tlsHandshake(options).then(
    (ok) => ({ ok }),
    (error: unknown) => ({ error }),
  );
  return judgeTls(url, outcome, (options.now ?? Date.now)());
}

