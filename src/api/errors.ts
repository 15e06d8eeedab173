import { AgentError, ExitCode, type ExitCodeValue } from '../errors.js';
import { scrubSecrets } from '../log.js';

/** What every API error carries so a log line identifies the request. Never a credential. */
export interface RequestFacts {
  method: string;
  /** URL path only: a pre-signed storage URL keeps its signature in the query, which is dropped. */
  path: string;
  status?: number | undefined;
  requestId?: string | undefined;
  /** `error.code` from the JSON error body, when there was one. */
  code?: string | undefined;
  /** `error.message` from the JSON error body (scrubbed), or a short excerpt of a non-JSON body. */
  serverMessage?: string | undefined;
}

export abstract class ApiError extends AgentError {
  readonly method: string;
  readonly path: string;
  readonly status: number | undefined;
  readonly requestId: string | undefined;
  readonly code: string | undefined;
  readonly serverMessage: string | undefined;
  /** Whether trying the same request again later can succeed. */
  abstract readonly retryable: boolean;

  constructor(facts: RequestFacts, summary: string, exitCode: ExitCodeValue, options?: { cause?: unknown }) {
    super(ApiError.describe(facts, summary), exitCode, options);
    this.method = facts.method;
    this.path = facts.path;
    this.status = facts.status;
    this.requestId = facts.requestId;
    this.code = facts.code;
    this.serverMessage = facts.serverMessage;
  }

  private static describe(facts: RequestFacts, summary: string): string {
    const status = facts.status === undefined ? '' : ` ${facts.status}`;
    const server = facts.serverMessage === undefined ? '' : `: ${facts.serverMessage}`;
    const code = facts.code === undefined ? '' : ` (${facts.code})`;
    const id = facts.requestId === undefined ? '' : ` [request ${facts.requestId}]`;
    return scrubSecrets(`${facts.method} ${facts.path} →${status} ${summary}${code}${server}${id}`);
  }

  /** Structured fields for a log line. */
  toLogFields(): Record<string, unknown> {
    return {
      method: this.method,
      path: this.path,
      status: this.status,
      requestId: this.requestId,
      code: this.code,
    };
  }
}

/** 401: the credential is missing, expired, revoked, or not this agent's. */
export class UnauthorizedError extends ApiError {
  readonly retryable = false;
  constructor(facts: RequestFacts) {
    super(facts, 'unauthorized', ExitCode.noPermission);
  }
}

/** 403: the credential is valid but lacks a scope (named when known) or another environment's. */
export class ForbiddenError extends ApiError {
  readonly retryable = false;
  readonly scope: string | undefined;
  constructor(facts: RequestFacts, scope: string | undefined) {
    super(facts, scope === undefined ? 'forbidden' : `forbidden (needs ${scope})`, ExitCode.noPermission);
    this.scope = scope;
  }
}

/** 429, or 503 with Retry-After: the server says when to come back. */
export class RateLimitedError extends ApiError {
  readonly retryable = true;
  /** Milliseconds to wait before the next attempt, from Retry-After; undefined when absent. */
  readonly retryAfterMs: number | undefined;
  constructor(facts: RequestFacts, retryAfterMs: number | undefined) {
    super(facts, retryAfterMs === undefined ? 'rate limited' : `rate limited (retry after ${Math.ceil(retryAfterMs / 1000)} s)`, ExitCode.tempFail);
    this.retryAfterMs = retryAfterMs;
  }
}

export type TransientKind = 'network' | 'timeout' | 'server' | 'tls' | 'protocol';

/** Network errors, timeouts, 5xx, TLS failures, malformed success bodies: try again with backoff. */
export class TransientError extends ApiError {
  readonly retryable = true;
  readonly kind: TransientKind;
  constructor(facts: RequestFacts, kind: TransientKind, detail: string, options?: { cause?: unknown }) {
    super(facts, detail, ExitCode.tempFail, options);
    this.kind = kind;
  }
}

/** Other 4xx: this request, unchanged, will keep failing. */
export class PermanentError extends ApiError {
  readonly retryable = false;
  constructor(facts: RequestFacts, detail = 'rejected') {
    super(facts, detail, ExitCode.failure);
  }
}
