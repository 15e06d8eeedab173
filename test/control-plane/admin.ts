import type { IncomingMessage, ServerResponse } from 'node:http';
import { isLoopbackHost } from '../../src/config/base-url.js';
import { buildBundle, bundleFromDirectory } from './bundles.js';
import type { ControlPlane } from './control-plane.js';
import type { PublishDeploymentOptions } from './deployments.js';
import { ROUTES, type FaultOptions, type FaultRoute, type RecordedRoute } from './types.js';
import { isObj } from './validate.js';

/**
 * The admin API of the HTTP server (/_admin/…, JSON, loopback clients only): lets e2e tests and
 * manual work in another process arrange the control plane and read what it recorded. Each
 * route maps onto one ControlPlane method; see ADMIN_ROUTES for the list.
 */

type Json = Record<string, unknown>;

class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface AdminRequest {
  method: string;
  params: string[];
  query: URLSearchParams;
  body: Json;
}

interface AdminRoute {
  method: string;
  pattern: RegExp;
  run: (cp: ControlPlane, request: AdminRequest, site: { baseUrl: string; storageOrigin: string }) => unknown;
}

const str = (value: unknown, field: string): string | undefined => {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new AdminError(400, `${field} must be a string`);
  return value;
};
const num = (value: unknown, field: string): number | undefined => {
  if (value === undefined || value === null) return undefined;
  if (value === 'Infinity') return Infinity;
  if (typeof value !== 'number') throw new AdminError(400, `${field} must be a number`);
  return value;
};
const strings = (value: unknown, field: string): string[] | undefined => {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new AdminError(400, `${field} must be an array of strings`);
  return value;
};
const posture = (value: unknown): 'dev' | 'staging' | 'prod' | undefined => {
  if (value === undefined || value === null) return undefined;
  if (value !== 'dev' && value !== 'staging' && value !== 'prod') throw new AdminError(400, 'posture must be dev, staging or prod');
  return value;
};

async function bundleOf(body: Json): Promise<Buffer> {
  if (typeof body.dir === 'string') return bundleFromDirectory(body.dir);
  if (typeof body.bundleBase64 === 'string') return Buffer.from(body.bundleBase64, 'base64');
  if (isObj(body.files)) {
    const files: Record<string, string> = {};
    for (const [path, content] of Object.entries(body.files)) {
      if (typeof content !== 'string') throw new AdminError(400, `files.${path} must be a string`);
      files[path] = content;
    }
    return buildBundle(files);
  }
  throw new AdminError(400, 'give the bundle as dir (a directory path), files ({path: content}) or bundleBase64');
}

function faultOptions(body: Json): FaultOptions {
  const options: FaultOptions = {};
  const status = num(body.status, 'status');
  if (status !== undefined) options.status = status;
  const times = num(body.times, 'times');
  if (times !== undefined) options.times = times;
  const retryAfter = str(body.retryAfter, 'retryAfter');
  if (retryAfter !== undefined) options.retryAfter = retryAfter;
  if (body.body !== undefined) options.body = body.body;
  if (isObj(body.headers)) options.headers = body.headers as Record<string, string>;
  const delayMs = num(body.delayMs, 'delayMs');
  if (delayMs !== undefined) options.delayMs = delayMs;
  if (body.drop === true) options.drop = true;
  const truncate = num(body.truncateAfterBytes, 'truncateAfterBytes');
  if (truncate !== undefined) options.truncateAfterBytes = truncate;
  if (body.ignoreRange === true) options.ignoreRange = true;
  return options;
}

function faultRoute(value: unknown): FaultRoute {
  if (value === '*' || (ROUTES as readonly unknown[]).includes(value)) return value as FaultRoute;
  throw new AdminError(400, `route must be '*' or one of ${ROUTES.join(', ')}`);
}

const ok = { ok: true };

export const ADMIN_ROUTES: readonly AdminRoute[] = [
  {
    method: 'GET',
    pattern: /^\/_admin\/state$/,
    run: (cp, _req, site) => ({
      baseUrl: site.baseUrl,
      storageOrigin: site.storageOrigin,
      defaultEnvironment: cp.defaultEnvironment,
      environments: cp.environments(),
      currentKid: cp.currentKid(),
    }),
  },
  { method: 'POST', pattern: /^\/_admin\/reset$/, run: (cp) => (cp.reset(), ok) },
  {
    method: 'POST',
    pattern: /^\/_admin\/environments$/,
    run: (cp, { body }) =>
      cp.createEnvironment({ orgId: str(body.orgId, 'orgId'), projectId: str(body.projectId, 'projectId'), environmentId: str(body.environmentId, 'environmentId'), posture: posture(body.posture) }),
  },
  {
    method: 'POST',
    pattern: /^\/_admin\/enrollment-tokens$/,
    run: (cp, { body }) => {
      const environmentId = str(body.environmentId, 'environmentId') ?? cp.defaultEnvironment.environmentId;
      const token = cp.issueEnrollmentToken({ environmentId, scopes: strings(body.scopes, 'scopes'), ttlMs: num(body.ttlMs, 'ttlMs'), runtimeScopes: strings(body.runtimeScopes, 'runtimeScopes') });
      return { token, ...cp.environment(environmentId) };
    },
  },
  {
    method: 'POST',
    pattern: /^\/_admin\/agents$/,
    run: (cp, { body }) => cp.createAgent({ environmentId: str(body.environmentId, 'environmentId'), name: str(body.name, 'name'), scopes: strings(body.scopes, 'scopes') }),
  },
  { method: 'GET', pattern: /^\/_admin\/agents$/, run: (cp) => cp.agents() },
  { method: 'GET', pattern: /^\/_admin\/agents\/([^/]+)$/, run: (cp, { params }) => cp.agent(params[0] ?? '') },
  {
    method: 'POST',
    pattern: /^\/_admin\/agents\/([^/]+)\/scopes$/,
    run: (cp, { params, body }) => (cp.setAgentScopes(params[0] ?? '', strings(body.scopes, 'scopes') ?? []), ok),
  },
  { method: 'POST', pattern: /^\/_admin\/agents\/([^/]+)\/revoke$/, run: (cp, { params }) => (cp.revokeAgentKey(params[0] ?? ''), ok) },
  { method: 'POST', pattern: /^\/_admin\/agents\/([^/]+)\/restore$/, run: (cp, { params }) => (cp.restoreAgentKey(params[0] ?? ''), ok) },
  {
    method: 'POST',
    pattern: /^\/_admin\/heartbeat-interval$/,
    run: (cp, { body }) => (cp.setHeartbeatInterval(num(body.seconds, 'seconds') ?? 30, str(body.agentId, 'agentId')), ok),
  },
  {
    method: 'POST',
    pattern: /^\/_admin\/deployments$/,
    run: async (cp, { body }) => {
      const options: PublishDeploymentOptions = { bundle: await bundleOf(body) };
      const agentId = str(body.agentId, 'agentId');
      if (agentId !== undefined) options.agentId = agentId;
      const environmentId = str(body.environmentId, 'environmentId');
      if (environmentId !== undefined) options.environmentId = environmentId;
      const kid = str(body.kid, 'kid');
      if (kid !== undefined) options.kid = kid;
      if (body.approvalCredential === null || typeof body.approvalCredential === 'string') options.approvalCredential = body.approvalCredential;
      const bundleUrl = str(body.bundleUrl, 'bundleUrl');
      if (bundleUrl !== undefined) options.bundleUrl = bundleUrl;
      const size = num(body.sizeOverride, 'sizeOverride');
      if (size !== undefined) options.sizeOverride = size;
      const sha = str(body.sha256Override, 'sha256Override');
      if (sha !== undefined) options.sha256Override = sha;
      if (isObj(body.signatureOverride)) options.signatureOverride = body.signatureOverride;
      if (isObj(body.extra)) options.extra = body.extra;
      return cp.publishDeployment(options);
    },
  },
  {
    method: 'POST',
    pattern: /^\/_admin\/deployments\/clear$/,
    run: (cp, { body }) => {
      const agentId = str(body.agentId, 'agentId');
      const environmentId = str(body.environmentId, 'environmentId');
      cp.clearDeployment(agentId !== undefined ? { agentId } : environmentId !== undefined ? { environmentId } : undefined);
      return ok;
    },
  },
  { method: 'GET', pattern: /^\/_admin\/signing-keys$/, run: (cp) => ({ ...cp.jwks(), currentKid: cp.currentKid() }) },
  {
    method: 'POST',
    pattern: /^\/_admin\/signing-keys$/,
    run: (cp, { body }) => ({ kid: cp.addSigningKey({ kid: str(body.kid, 'kid'), exp: num(body.exp, 'exp'), published: body.published === false ? false : undefined }) }),
  },
  { method: 'DELETE', pattern: /^\/_admin\/signing-keys\/([^/]+)$/, run: (cp, { params }) => (cp.removeSigningKey(params[0] ?? ''), ok) },
  { method: 'POST', pattern: /^\/_admin\/jwks-override$/, run: (cp, { body }) => (cp.setJwksOverride(body.body), ok) },
  { method: 'DELETE', pattern: /^\/_admin\/jwks-override$/, run: (cp) => (cp.setJwksOverride(undefined), ok) },
  {
    method: 'POST',
    pattern: /^\/_admin\/approval-credentials$/,
    run: (cp, { body }) => {
      const signWith = body.signWith === 'other-key' ? 'other-key' : undefined;
      const tamper = body.tamper === true || isObj(body.tamper) ? (body.tamper as true | Record<string, unknown>) : undefined;
      const credential = cp.issueApprovalCredential(isObj(body.payload) ? body.payload : {}, {
        kid: str(body.kid, 'kid'),
        signWith,
        tamper,
        environmentId: str(body.environmentId, 'environmentId'),
        specKv: str(body.specKv, 'specKv'),
      });
      return { credential };
    },
  },
  { method: 'GET', pattern: /^\/_admin\/faults$/, run: (cp) => cp.pendingFaults() },
  { method: 'POST', pattern: /^\/_admin\/faults$/, run: (cp, { body }) => (cp.fault(faultRoute(body.route), faultOptions(body)), ok) },
  { method: 'DELETE', pattern: /^\/_admin\/faults$/, run: (cp) => (cp.clearFaults(), ok) },
  { method: 'POST', pattern: /^\/_admin\/outage$/, run: (cp, { body }) => (cp.outage(body.on === true), ok) },
  {
    method: 'POST',
    pattern: /^\/_admin\/artifact-budget$/,
    run: (cp, { body }) => {
      const limit = num(body.limit, 'limit');
      const windowMs = num(body.windowMs, 'windowMs');
      cp.setArtifactBudget(limit === undefined ? undefined : { limit, windowMs: windowMs ?? 60_000 });
      return ok;
    },
  },
  { method: 'POST', pattern: /^\/_admin\/ready$/, run: (cp, { body }) => (cp.setReady(body.ready !== false), ok) },
  {
    method: 'GET',
    pattern: /^\/_admin\/requests$/,
    run: (cp, { query }) => {
      const route = query.get('route');
      return route === null ? cp.requests : cp.requestsTo(route as RecordedRoute);
    },
  },
  {
    method: 'GET',
    pattern: /^\/_admin\/heartbeats$/,
    run: (cp, { query }) => {
      const agentId = query.get('agentId');
      return agentId === null ? cp.heartbeats : cp.heartbeatsOf(agentId);
    },
  },
  {
    method: 'GET',
    pattern: /^\/_admin\/status-reports$/,
    run: (cp, { query }) => {
      const agentId = query.get('agentId');
      return agentId === null ? cp.statusReports : cp.statusReportsOf(agentId);
    },
  },
  { method: 'GET', pattern: /^\/_admin\/artifacts$/, run: (cp) => cp.artifacts },
];

function send(res: ServerResponse, status: number, body: unknown): void {
  // JSON has no Infinity: a fault armed for every request shows times as null.
  const text = JSON.stringify(body ?? null);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Json> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 4 * 1024 * 1024) throw new AdminError(413, 'admin request body over 4 MiB');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AdminError(400, 'the body is not valid JSON');
  }
  if (!isObj(parsed)) throw new AdminError(400, 'the body must be a JSON object');
  return parsed;
}

function remoteIsLoopback(req: IncomingMessage): boolean {
  const address = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  return isLoopbackHost(address);
}

export async function handleAdmin(cp: ControlPlane, req: IncomingMessage, res: ServerResponse, site: { baseUrl: string; storageOrigin: string }): Promise<void> {
  try {
    if (!remoteIsLoopback(req)) throw new AdminError(403, 'the admin API answers loopback clients only');
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const method = req.method ?? 'GET';
    const candidates = ADMIN_ROUTES.filter((route) => route.pattern.test(url.pathname));
    const route = candidates.find((candidate) => candidate.method === method);
    if (route === undefined) {
      if (candidates.length > 0) throw new AdminError(405, `${method} is not allowed on ${url.pathname}`);
      throw new AdminError(404, `no admin route ${method} ${url.pathname}`);
    }
    const params = (route.pattern.exec(url.pathname) ?? []).slice(1).map((part) => decodeURIComponent(part));
    const body = method === 'GET' || method === 'DELETE' ? {} : await readJson(req);
    send(res, 200, await route.run(cp, { method, params, query: url.searchParams, body }, site));
  } catch (err) {
    const status = err instanceof AdminError ? err.status : /^unknown |^no published/.test(err instanceof Error ? err.message : '') ? 404 : 400;
    send(res, status, { error: { code: 'admin_error', message: err instanceof Error ? err.message : String(err) } });
  }
}
