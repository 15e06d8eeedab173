/** What a response status means for the request that got it (API.md "Status semantics"). */
export type StatusClass = 'ok' | 'unauthorized' | 'forbidden' | 'rate_limited' | 'transient' | 'permanent';

export function classifyStatus(status: number, hasRetryAfter: boolean): StatusClass {
  if (status >= 200 && status < 400) return 'ok';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 429) return 'rate_limited';
  if (status === 503) return hasRetryAfter ? 'rate_limited' : 'transient';
  // 408 is the server timing out our request: worth another try, unlike other 4xx.
  if (status === 408) return 'transient';
  // API.md names 502/503/504; other 5xx (500, 507, ...) are server trouble too, except 501
  // (not implemented), which no retry will change.
  if (status >= 500 && status !== 501) return 'transient';
  return 'permanent';
}

const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'EPROTO',
]);

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

export interface NetworkFailure {
  kind: 'network' | 'timeout' | 'tls';
  /** errno-style code of the innermost cause, e.g. ECONNREFUSED, when there is one. */
  code: string | undefined;
  detail: string;
}

function causeChain(err: unknown): { code?: unknown; message?: unknown }[] {
  const chain: { code?: unknown; message?: unknown }[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth += 1) {
    chain.push(current as { code?: unknown; message?: unknown });
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

const EXPLANATIONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'DNS name not found',
  EAI_AGAIN: 'DNS lookup failed temporarily',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_SOCKET: 'the server closed the connection',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'timed out waiting for response headers',
  UND_ERR_BODY_TIMEOUT: 'timed out reading the response body',
  CERT_HAS_EXPIRED: 'the server certificate has expired (or this host clock is wrong)',
  CERT_NOT_YET_VALID: 'the server certificate is not yet valid (check this host clock)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'a self-signed certificate is in the chain (a TLS-intercepting proxy? set NODE_EXTRA_CA_CERTS)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate chain cannot be verified (set NODE_EXTRA_CA_CERTS for a private CA)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the certificate issuer is unknown (set NODE_EXTRA_CA_CERTS for a private CA)',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate does not match the host name',
};

/** Classifies an exception thrown by fetch (never an HTTP status) for retry and for humans. */
export function classifyNetworkError(err: unknown): NetworkFailure {
  const chain = causeChain(err);
  const codes = chain.map((item) => (typeof item.code === 'string' ? item.code : undefined)).filter((c): c is string => c !== undefined);
  const code = codes.at(-1);
  const known = codes.find((c) => EXPLANATIONS[c] !== undefined);
  const innermost = chain.at(-1);
  const fallback = typeof innermost?.message === 'string' ? innermost.message : 'network error';
  const detail = known !== undefined ? (EXPLANATIONS[known] ?? fallback) : fallback;
  if (codes.some((c) => TLS_CODES.has(c))) return { kind: 'tls', code, detail };
  if (codes.some((c) => TIMEOUT_CODES.has(c))) return { kind: 'timeout', code, detail };
  return { kind: 'network', code, detail };
}
