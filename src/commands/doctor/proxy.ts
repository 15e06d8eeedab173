import { pass, redactUrlCredentials, warn, type CheckResult } from './check.js';

export type ProxyDecision =
  | { kind: 'direct'; reason: 'no_proxy_set' }
  | { kind: 'direct'; reason: 'no_proxy_match'; variable: string; entry: string }
  | { kind: 'proxy'; variable: string; proxyUrl: string };

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443 };

/**
 * Pure: which proxy the agent's dispatcher (undici's EnvHttpProxyAgent, see api/dispatcher.ts)
 * uses for `url`. Mirrors its rules exactly: lowercase variables win over uppercase ones (an
 * empty lowercase one disables the proxy), https falls back to the HTTP proxy, and NO_PROXY
 * entries match the host or any subdomain (a leading `.` or `*.` is dropped), optionally on one
 * port; `*` disables proxying.
 */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv): ProxyDecision {
  const pick = (lower: string, upper: string): { variable: string; value: string } | undefined => {
    const value = env[lower] ?? env[upper];
    if (value === undefined || value === '') return undefined;
    return { variable: env[lower] !== undefined ? lower : upper, value };
  };
  const http = pick('http_proxy', 'HTTP_PROXY');
  const https = pick('https_proxy', 'HTTPS_PROXY') ?? http;
  const chosen = url.protocol === 'https:' ? https : http;

  const noProxyVariable = env.no_proxy !== undefined ? 'no_proxy' : 'NO_PROXY';
  const noProxy = env.no_proxy ?? env.NO_PROXY ?? '';
  if (chosen === undefined) return { kind: 'direct', reason: 'no_proxy_set' };

  const hostname = url.host.replace(/:\d*$/, '').toLowerCase();
  const port = Number.parseInt(url.port, 10) || DEFAULT_PORTS[url.protocol] || 0;
  const entries = noProxy.split(/[,\s]/).filter((entry) => entry !== '');
  if (entries.length > 0 && noProxy === '*') return { kind: 'direct', reason: 'no_proxy_match', variable: noProxyVariable, entry: '*' };
  for (const entry of entries) {
    const parsed = /^(.+):(\d+)$/.exec(entry);
    const host = (parsed?.[1] ?? entry).replace(/^\*?\./, '').toLowerCase();
    const entryPort = parsed?.[2] === undefined ? 0 : Number.parseInt(parsed[2], 10);
    if (entryPort !== 0 && entryPort !== port) continue;
    if (hostname === host || hostname.endsWith(`.${host}`)) return { kind: 'direct', reason: 'no_proxy_match', variable: noProxyVariable, entry };
  }
  return { kind: 'proxy', variable: chosen.variable, proxyUrl: chosen.value };
}

/**
 * Pure: the proxy line of `doctor`. `proxyEnv` is the configuration's effective proxy variables
 * (process environment over env file); `fromFile` names those that came from agent.env.
 */
export function judgeProxy(url: URL, proxyEnv: NodeJS.ProcessEnv, fromFile: readonly string[] = []): CheckResult {
  const name = 'proxy';
  const decision = proxyFor(url, proxyEnv);
  const fileNote = fromFile.length > 0 ? ` (${fromFile.join(', ')} from the env file)` : '';
  if (decision.kind === 'proxy') {
    let proxyUrl: URL | undefined;
    try {
      proxyUrl = new URL(decision.proxyUrl);
    } catch {
      proxyUrl = undefined;
    }
    if (proxyUrl === undefined || (proxyUrl.protocol !== 'http:' && proxyUrl.protocol !== 'https:')) {
      return warn(name, `${decision.variable} is not an http:// or https:// URL ("${redactUrlCredentials(decision.proxyUrl)}"); requests to ${url.host} will fail`, `set ${decision.variable}=http://proxy.example:3128`);
    }
  }
  return pass(name, describe(url, decision) + fileNote);
}

function describe(url: URL, decision: ProxyDecision): string {
  switch (decision.kind) {
    case 'proxy':
      return `${url.host} is reached through ${redactUrlCredentials(decision.proxyUrl)} (${decision.variable})`;
    case 'direct':
      return decision.reason === 'no_proxy_set'
        ? `no proxy variable applies to ${url.protocol}// URLs: ${url.host} is reached directly`
        : `${url.host} is reached directly: ${decision.variable} entry "${decision.entry}" matches it`;
  }
}
