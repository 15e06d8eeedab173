import { AgentClient, probeHealth } from '../../api/client.js';
import { ApiError, ForbiddenError, RateLimitedError, UnauthorizedError } from '../../api/errors.js';
import { Transport, type FetchLike } from '../../api/transport.js';
import { joinApiUrl } from '../../config/base-url.js';
import { errorMessage } from '../../errors.js';
import { formatDuration } from '../../util/format.js';
import { fail, pass, warn, type CheckResult } from './check.js';

export interface ReadyzOutcome {
  result: CheckResult;
  /** Local clock minus the server's (ms), when the server answered with a Date header. */
  skewMs: number | undefined;
  reachable: boolean;
}

/** Pure: clock skew against the server. Signatures, approval expiry and certificates all depend on the clock. */
export function judgeClockSkew(skewMs: number | undefined): CheckResult {
  const name = 'clock';
  if (skewMs === undefined) return warn(name, 'the control plane sent no Date header; the clock could not be compared', 'check the clock by hand: timedatectl (System clock synchronized: yes)');
  const abs = Math.abs(skewMs);
  const direction = skewMs > 0 ? 'ahead of' : 'behind';
  const summary = `this host is ${formatDuration(abs)} ${direction} the control plane`;
  const fix = 'enable time synchronisation: timedatectl set-ntp true (or start chronyd/ntpd), then check timedatectl';
  if (abs > 5 * 60_000) return fail(name, `${summary}: approval credentials and signing keys may be judged expired or not yet valid`, fix);
  if (abs > 30_000) return warn(name, `${summary} (more than 30 s)`, fix);
  return pass(name, abs < 2_000 ? 'in sync with the control plane (within 2 s)' : `${summary} (within 30 s)`);
}

/** GET /readyz (API.md §8): tells "cannot reach the API" from "the API refuses my key". Also reads the Date header. */
export async function checkReadyz(baseUrl: URL, options: { allowInsecureHttp: boolean; fetch?: FetchLike | undefined; now?: () => number; signal?: AbortSignal }): Promise<ReadyzOutcome> {
  const now = options.now ?? Date.now;
  const transport = new Transport({ baseUrl, allowInsecureHttp: options.allowInsecureHttp, now, ...(options.fetch ? { fetch: options.fetch } : {}) });
  const name = 'control plane';
  const sentAt = now();
  try {
    const { status, date } = await probeHealth(transport, '/readyz', options.signal);
    const receivedAt = now();
    const serverMs = date === null ? Number.NaN : Date.parse(date);
    // The Date header has whole seconds (truncated): +500 ms centres it; the request's midpoint is our "now".
    const skewMs = Number.isFinite(serverMs) ? Math.round((sentAt + receivedAt) / 2 - (serverMs + 500)) : undefined;
    const url = joinApiUrl(baseUrl, '/readyz').href;
    if (status === 200) return { result: pass(name, `${url} answered 200 in ${receivedAt - sentAt} ms`), skewMs, reachable: true };
    return {
      result: fail(name, `${url} answered ${status}: the control plane is up but not ready`, 'wait and retry; if it lasts, check the ByteOr status page or your control-plane operator'),
      skewMs,
      reachable: true,
    };
  } catch (err) {
    if (err instanceof ApiError && err.status !== undefined) {
      const status = err.status;
      const fix =
        status === 404
          ? 'BYTEOR_API_BASE_URL may carry a wrong path prefix, or a proxy/gateway answers instead of the API: use the API origin from the ByteOr console'
          : status === 407
            ? 'the proxy wants credentials: put them in HTTPS_PROXY (http://user:password@proxy:3128)'
            : 'something between this host and the API (a proxy or gateway) answers instead of it; check BYTEOR_API_BASE_URL and the proxy';
      return { result: fail(name, `/readyz answered ${status}: ${errorMessage(err)}`, fix), skewMs: undefined, reachable: true };
    }
    return {
      result: fail(name, `cannot reach ${baseUrl.origin}: ${errorMessage(err)}`, 'see the DNS, TLS and proxy lines above; check the firewall towards the API host'),
      skewMs: undefined,
      reachable: false,
    };
  }
}

/** How one read-only call with the runtime key went. */
export type ProbeOutcome = { kind: 'ok' } | { kind: 'unauthorized'; error: ApiError } | { kind: 'forbidden'; error: ForbiddenError } | { kind: 'rate_limited'; error: RateLimitedError } | { kind: 'error'; error: unknown };

export function probeOutcome(err: unknown): ProbeOutcome {
  if (err === undefined) return { kind: 'ok' };
  if (err instanceof UnauthorizedError) return { kind: 'unauthorized', error: err };
  if (err instanceof ForbiddenError) return { kind: 'forbidden', error: err };
  if (err instanceof RateLimitedError) return { kind: 'rate_limited', error: err };
  return { kind: 'error', error: err };
}

export interface KeyProbes {
  deployment: ProbeOutcome;
  signingKeys: ProbeOutcome;
}

export interface KeyIdentity {
  agentId: string;
  keyHint: string;
  envFile: string;
}

/** Pure: the runtime-key line and one line per scope the read-only calls could test. 401 and 403 are told apart. */
export function judgeKey(probes: KeyProbes, who: KeyIdentity): CheckResult[] {
  const all = [probes.deployment, probes.signingKeys];
  const reenroll = `re-enroll: BYTEOR_ENROLLMENT_TOKEN=… byteor-agent enroll --force --config ${who.envFile}`;
  if (all.some((p) => p.kind === 'unauthorized')) {
    return [fail('runtime key', `the control plane rejects the key (${who.keyHint}) of agent ${who.agentId} (401: revoked, expired or not this agent's)`, reenroll)];
  }
  if (all.every((p) => p.kind === 'error')) {
    const first = all[0];
    const message = first !== undefined && first.kind === 'error' ? errorMessage(first.error) : 'unknown error';
    return [warn('runtime key', `not checked: ${message}`, 'fix the connectivity problems above, then run doctor again')];
  }
  const wrongEnvironment = all.find((p): p is { kind: 'forbidden'; error: ForbiddenError } => p.kind === 'forbidden' && p.error.code === 'wrong_environment');
  if (wrongEnvironment !== undefined) {
    return [fail('runtime key', `the key (${who.keyHint}) is valid but bound to another environment than agent ${who.agentId}'s (403)`, reenroll)];
  }
  const out: CheckResult[] = [pass('runtime key', `accepted for agent ${who.agentId} (${who.keyHint})`)];
  const scopeLine = (scope: string, probe: ProbeOutcome, what: string): CheckResult => {
    const name = `scope ${scope}`;
    switch (probe.kind) {
      case 'ok':
        return pass(name, `works (${what})`);
      case 'forbidden':
        return fail(name, `missing: the key is accepted but lacks ${probe.error.scope ?? scope} (403); the agent pauses that job and re-checks every 15 min`, `grant ${scope} to agent ${who.agentId} in the ByteOr console (or re-enroll with a token that grants it)`);
      case 'rate_limited':
        return warn(name, `not checked: rate limited (429)${probe.error.retryAfterMs === undefined ? '' : `, retry after ${Math.ceil(probe.error.retryAfterMs / 1000)} s`}`, 'run doctor again later');
      case 'unauthorized':
        return fail(name, 'the key was rejected (401)', reenroll);
      case 'error':
        return warn(name, `not checked: ${errorMessage(probe.error)}`, 'run doctor again once the control plane is reachable');
    }
  };
  out.push(scopeLine('agent:deployment_read', probes.deployment, 'GET …/deployment'));
  out.push(scopeLine('agent:signing_keys_read', probes.signingKeys, 'GET …/signing-keys'));
  return out;
}

/**
 * The two read-only calls a runtime key can make: fetch the deployment and the key set, each with
 * the ETag the agent stored, so an unchanged answer is a bodiless 304. Nothing on the control
 * plane changes; heartbeats and uploads would, so they are not tried (see judgeReportedScopes).
 */
export async function probeKey(options: {
  baseUrl: URL;
  agentId: string;
  apiKey: string;
  allowInsecureHttp: boolean;
  etags: { deployment: string | undefined; signingKeys: string | undefined };
  fetch?: FetchLike | undefined;
  signal?: AbortSignal;
}): Promise<KeyProbes> {
  const client = new AgentClient({ baseUrl: options.baseUrl, agentId: options.agentId, apiKey: options.apiKey, allowInsecureHttp: options.allowInsecureHttp, ...(options.fetch ? { fetch: options.fetch } : {}) });
  const settle = (work: Promise<unknown>): Promise<ProbeOutcome> =>
    work.then(
      () => probeOutcome(undefined),
      (err: unknown) => probeOutcome(err),
    );
  const [deployment, signingKeys] = await Promise.all([
    settle(client.getDeployment(options.etags.deployment, options.signal)),
    settle(client.getSigningKeys(options.etags.signingKeys, options.signal)),
  ]);
  return { deployment, signingKeys };
}
