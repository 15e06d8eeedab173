import { isIP } from 'node:net';

/** 127.0.0.0/8, ::1 and localhost: the only hosts plain http:// is allowed to without an opt-in. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  const lower = host.toLowerCase();
  if (lower === 'localhost' || lower.endsWith('.localhost')) return true;
  if (isIP(lower) === 4) return lower.startsWith('127.');
  if (isIP(lower) === 6) return lower === '::1' || lower === '0:0:0:0:0:0:0:1';
  return false;
}

/** Why `url` may not be used as the API origin (or as a download origin), or undefined when fine. */
export function transportProblem(url: URL, allowInsecureHttp: boolean): string | undefined {
  if (url.protocol === 'https:') return undefined;
  if (url.protocol !== 'http:') return `uses ${url.protocol.replace(/:$/, '')}://; only https:// is supported`;
  if (isLoopbackHost(url.hostname) || allowInsecureHttp) return undefined;
  return `uses plain http:// to a non-loopback host (${url.hostname}); the runtime key would travel unencrypted`;
}

/** Parses and checks BYTEOR_API_BASE_URL; returns the problem text on failure. */
export function parseBaseUrl(raw: string, allowInsecureHttp: boolean): { url: URL } | { problem: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { problem: `is not an absolute URL ("${raw}")` };
  }
  if (url.username !== '' || url.password !== '') return { problem: 'contains credentials (user:password@); the API key is sent as a header instead' };
  if (url.search !== '' || url.hash !== '') return { problem: 'contains a query or fragment; give only the origin and an optional path prefix' };
  const problem = transportProblem(url, allowInsecureHttp);
  if (problem !== undefined) return { problem };
  // A trailing slash is ignored; a path prefix (a gateway mount point) is kept.
  url.pathname = url.pathname.replace(/\/+$/, '');
  return { url };
}

/** Joins an API path (starting with '/') to the base, keeping any path prefix the base has. */
export function joinApiUrl(base: URL, path: string): URL {
  if (!path.startsWith('/')) throw new Error(`API path must start with '/': ${path}`);
  const prefix = base.pathname.replace(/\/+$/, '');
  const joined = new URL(base.href);
  const queryIndex = path.indexOf('?');
  joined.pathname = prefix + (queryIndex === -1 ? path : path.slice(0, queryIndex));
  joined.search = queryIndex === -1 ? '' : path.slice(queryIndex);
  return joined;
}
