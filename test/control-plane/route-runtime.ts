import type { HeartbeatRequest } from '../../src/api/types.js';
import { authenticateAgent } from './auth.js';
import type { RouteContext } from './context.js';
import { contentEtag, etagMatches } from './crypto.js';
import { emptyResponse, errorResponse, jsonResponse } from './responses.js';
import type { StatusReportRecord } from './types.js';
import { heartbeatBodyProblem, statusBodyProblem } from './validate.js';

/** The body checks every JSON route shares: present and parseable. */
function jsonBodyProblem(ctx: RouteContext): Response | undefined {
  if (ctx.body.kind === 'none') return errorResponse(400, 'invalid_body', 'a JSON body is required');
  if (ctx.json === undefined) return errorResponse(400, 'invalid_json', 'the body is not valid JSON');
  return undefined;
}

/** POST /api/v1/agents/{agent_id}/heartbeat (API.md §2). */
export function heartbeat(ctx: RouteContext): Response {
  const auth = authenticateAgent(ctx, { agentId: ctx.params.agentId, scope: 'agent:heartbeat' });
  if (!auth.ok) return auth.response;
  const bad = jsonBodyProblem(ctx);
  if (bad !== undefined) return bad;
  const problem = heartbeatBodyProblem(ctx.json);
  if (problem !== undefined) return errorResponse(400, 'invalid_body', problem);
  const record = { agentId: auth.agent.agentId, body: ctx.json as HeartbeatRequest, at: ctx.now };
  ctx.state.heartbeats.push(record);
  auth.agent.lastHeartbeat = record;
  auth.agent.heartbeatCount += 1;
  return jsonResponse(200, { server_time: new Date(ctx.now).toISOString(), heartbeat_interval_seconds: ctx.cp.heartbeatIntervalFor(auth.agent.agentId) });
}

/** GET /api/v1/agents/{agent_id}/deployment (API.md §3): 200 + ETag, 304, or 204. */
export function deployment(ctx: RouteContext): Response {
  const auth = authenticateAgent(ctx, { agentId: ctx.params.agentId, scope: 'agent:deployment_read' });
  if (!auth.ok) return auth.response;
  const current = ctx.cp.deploymentFor(auth.agent.agentId);
  if (current === undefined) return emptyResponse(204);
  const headers = { etag: current.etag, 'cache-control': 'no-cache' };
  if (etagMatches(ctx.request.headers.get('if-none-match'), current.etag)) return emptyResponse(304, headers);
  return jsonResponse(200, current.body, headers);
}

/** GET /api/v1/agents/{agent_id}/signing-keys (API.md §5): the JWKS with an ETag, or 304. */
export function signingKeys(ctx: RouteContext): Response {
  const auth = authenticateAgent(ctx, { agentId: ctx.params.agentId, scope: 'agent:signing_keys_read' });
  if (!auth.ok) return auth.response;
  const override = ctx.state.jwksOverride;
  const etag = override === undefined ? ctx.state.keys.etag() : contentEtag('o', override.body);
  const headers = { etag, 'cache-control': 'no-cache' };
  if (etagMatches(ctx.request.headers.get('if-none-match'), etag)) return emptyResponse(304, headers);
  if (override === undefined) return jsonResponse(200, ctx.state.keys.jwks(), headers);
  // An override string is served verbatim, still labelled JSON: the client must survive garbage.
  if (typeof override.body === 'string') return new Response(override.body, { status: 200, headers: { 'content-type': 'application/json', ...headers } });
  return jsonResponse(200, override.body, headers);
}

/** POST /api/v1/agents/{agent_id}/deployments/{deployment_id}/status (API.md §4). */
export function statusReport(ctx: RouteContext): Response {
  const auth = authenticateAgent(ctx, { agentId: ctx.params.agentId, scope: 'agent:deployment_read' });
  if (!auth.ok) return auth.response;
  const deploymentId = ctx.params.deploymentId ?? '';
  const published = ctx.state.deployments.get(deploymentId);
  if (published === undefined || published.environmentId !== auth.agent.environmentId) {
    return errorResponse(404, 'unknown_deployment', `no deployment ${deploymentId} for this agent`);
  }
  const bad = jsonBodyProblem(ctx);
  if (bad !== undefined) return bad;
  const problem = statusBodyProblem(ctx.json);
  if (problem !== undefined) return errorResponse(400, problem.code, problem.message);
  const raw = ctx.json as StatusReportRecord['body'];
  const body: StatusReportRecord['body'] = { ...raw, reason: raw.reason ?? null, message: raw.message ?? null };
  ctx.state.statusReports.push({ agentId: auth.agent.agentId, deploymentId, body, at: ctx.now });
  auth.agent.deploymentStates[deploymentId] = { state: body.state, reason: body.reason, message: body.message, bundleSha256: body.bundle_sha256, at: ctx.now };
  return emptyResponse(204);
}
