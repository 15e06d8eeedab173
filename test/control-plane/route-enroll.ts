import { insertAgent, uniqueAgentName } from './agents.js';
import { bearerOf } from './auth.js';
import type { RouteContext } from './context.js';
import { errorResponse, jsonResponse } from './responses.js';
import { enrollBodyProblem } from './validate.js';

/** How long an Idempotency-Key replays the first 201 (API.md §1). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

interface EnrollBody {
  name?: string;
  hostname: string;
  os?: unknown;
  arch?: unknown;
  runtime?: unknown;
  labels?: Record<string, string>;
}

/**
 * POST /api/v1/orgs/{org}/projects/{prj}/environments/{env}/agents (API.md §1).
 * Order of checks: token known → bound to this org/project/environment → has agent:enroll →
 * idempotent replay → not used → not expired → valid body. A replay comes before the
 * used/expired checks so a lost 201 can be fetched again for 24 h without burning the token.
 */
export function enroll(ctx: RouteContext): Response {
  const { state, params, now } = ctx;
  const token = bearerOf(ctx.request);
  if (token === undefined) return errorResponse(401, 'missing_credential', 'missing Authorization: Bearer <enrollment token>');
  const record = state.tokens.get(token);
  if (record === undefined) return errorResponse(401, 'invalid_token', 'unknown enrollment token');

  const env = state.environments.get(record.environmentId);
  if (env === undefined || env.environmentId !== params.environmentId || env.orgId !== params.orgId || env.projectId !== params.projectId) {
    return errorResponse(403, 'wrong_environment', 'the enrollment token belongs to another organization, project or environment');
  }
  if (!record.scopes.includes('agent:enroll')) {
    return errorResponse(403, 'insufficient_scope', 'enrollment token lacks agent:enroll', { extra: { required_scope: 'agent:enroll' } });
  }

  const idempotencyKey = ctx.request.headers.get('idempotency-key') ?? undefined;
  if (idempotencyKey !== undefined) {
    const replay = record.replays.get(idempotencyKey);
    if (replay !== undefined && now - replay.at < IDEMPOTENCY_WINDOW_MS) {
      return jsonResponse(201, replay.body, { 'idempotent-replayed': 'true' });
    }
  }
  if (record.usedAt !== undefined) return errorResponse(401, 'token_used', 'the enrollment token was already used');
  if (now >= record.expiresAt) return errorResponse(401, 'token_expired', 'the enrollment token has expired');

  // The contract makes the key mandatory: without it a lost 201 would burn the token.
  if (idempotencyKey === undefined || idempotencyKey.trim() === '' || idempotencyKey.length > 255) {
    return errorResponse(400, 'missing_idempotency_key', 'an Idempotency-Key header (1-255 characters) is required');
  }
  if (ctx.body.kind === 'none') return errorResponse(400, 'invalid_body', 'a JSON body is required');
  if (ctx.json === undefined) return errorResponse(400, 'invalid_json', 'the body is not valid JSON');
  const problem = enrollBodyProblem(ctx.json);
  if (problem !== undefined) return errorResponse(400, 'invalid_body', problem);
  const body = ctx.json as EnrollBody;

  const agent = insertAgent(state, now, {
    environmentId: env.environmentId,
    name: body.name ?? uniqueAgentName(state, env.environmentId, body.hostname),
    scopes: record.runtimeScopes,
    createdBy: 'enrollment',
    hostname: body.hostname,
    os: body.os,
    arch: body.arch,
    runtime: body.runtime,
    labels: body.labels ?? {},
  });
  record.usedAt = now;
  record.usedBy = agent.agentId;
  const response = {
    agent_id: agent.agentId,
    name: agent.name,
    api_key: agent.apiKey,
    scopes: [...agent.scopes],
    org_id: env.orgId,
    project_id: env.projectId,
    environment_id: env.environmentId,
    environment_posture: env.posture,
    heartbeat_interval_seconds: ctx.cp.heartbeatIntervalFor(agent.agentId),
  };
  record.replays.set(idempotencyKey, { body: response, at: now });
  return jsonResponse(201, response);
}
