import type { RouteContext } from './context.js';
import { errorResponse } from './responses.js';
import type { AgentRecord } from './types.js';

export type AuthResult = { ok: true; agent: AgentRecord } | { ok: false; response: Response };

/** The credential of `Authorization: Bearer <credential>`, or undefined. */
export function bearerOf(request: Request): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get('authorization') ?? '');
  return match?.[1];
}

const unauthorized = (code: string, message: string): AuthResult => ({
  ok: false,
  response: errorResponse(401, code, message, { headers: { 'www-authenticate': 'Bearer realm="byteor"' } }),
});

/**
 * Runtime-key authentication (API.md "Status semantics"): 401 when the key is missing, unknown,
 * revoked or another agent's; 403 with the missing scope named when it lacks `scope`, or when it
 * belongs to another environment than the path's.
 */
export function authenticateAgent(ctx: RouteContext, options: { scope: string; agentId?: string; environmentId?: string }): AuthResult {
  const key = bearerOf(ctx.request);
  if (key === undefined) return unauthorized('missing_credential', 'missing Authorization: Bearer <runtime key>');
  const agent = ctx.state.agentsByKey.get(key);
  if (agent === undefined) {
    const isToken = ctx.state.tokens.has(key);
    return unauthorized('invalid_credential', isToken ? 'an enrollment token is not a runtime key' : 'unknown runtime key');
  }
  if (agent.revoked) return unauthorized('credential_revoked', 'the runtime key was revoked');
  if (options.agentId !== undefined && options.agentId !== agent.agentId) return unauthorized('invalid_credential', 'the runtime key belongs to another agent');
  if (options.environmentId !== undefined && options.environmentId !== agent.environmentId) {
    return { ok: false, response: errorResponse(403, 'wrong_environment', 'the runtime key belongs to another environment') };
  }
  if (!agent.scopes.includes(options.scope)) {
    return {
      ok: false,
      // required_scope is our documented extension; the message names the scope too for clients that only read it.
      response: errorResponse(403, 'insufficient_scope', `runtime key lacks ${options.scope}`, { extra: { required_scope: options.scope } }),
    };
  }
  return { ok: true, agent };
}
