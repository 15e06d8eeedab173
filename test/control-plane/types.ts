/**
 * Record and option types of the fake control plane. Wire shapes (snake_case) come from the
 * agent's own src/api/types.ts so the fake and the client cannot drift apart silently; the
 * records the fake keeps for tests to assert on are camelCase.
 */
import type { Deployment, DeploymentState, FailureReason, HeartbeatRequest, Posture } from '../../src/api/types.js';

export type { Deployment, Posture } from '../../src/api/types.js';

/** Every route of API.md, by the name faults and request records use. */
export const ROUTES = ['enroll', 'heartbeat', 'deployment', 'bundle', 'status', 'signing-keys', 'artifacts', 'healthz', 'readyz'] as const;
export type RouteName = (typeof ROUTES)[number];
/** A request that matched no route (answered 404/405) is recorded under this name. */
export type RecordedRoute = RouteName | 'unknown';

export interface Environment {
  orgId: string;
  projectId: string;
  environmentId: string;
  posture: Posture;
}

export interface EnrollmentTokenRecord {
  token: string;
  environmentId: string;
  /** Scopes of the token itself; enrollment needs agent:enroll. */
  scopes: string[];
  /** Scopes the runtime key of the agent enrolled with this token gets. */
  runtimeScopes: string[];
  expiresAt: number;
  /** Set by the first 201; the token answers 401 afterwards (except idempotent replays). */
  usedAt: number | undefined;
  usedBy: string | undefined;
  /** Idempotency-Key → the 201 body it produced, for replays within 24 h. */
  replays: Map<string, { body: Record<string, unknown>; at: number }>;
}

export interface HeartbeatRecord {
  agentId: string;
  body: HeartbeatRequest;
  at: number;
}

export interface StatusReportRecord {
  agentId: string;
  deploymentId: string;
  body: {
    state: DeploymentState;
    bundle_sha256: string;
    reported_at: string;
    reason: FailureReason | null;
    message: string | null;
  };
  at: number;
}

export interface DeploymentStateRecord {
  state: DeploymentState;
  reason: FailureReason | null;
  message: string | null;
  bundleSha256: string;
  at: number;
}

/** An agent as the control plane knows it. Returned live by cp.agent(id): treat as read-only. */
export interface AgentRecord {
  agentId: string;
  name: string;
  environmentId: string;
  apiKey: string;
  scopes: string[];
  /** A revoked key answers 401 everywhere until restoreAgentKey(). */
  revoked: boolean;
  /** 'enrollment' when created through the API, 'direct' when by createAgent(). */
  createdBy: 'enrollment' | 'direct';
  createdAt: number;
  hostname: string;
  os: unknown;
  arch: unknown;
  runtime: unknown;
  labels: Record<string, string>;
  lastHeartbeat: HeartbeatRecord | undefined;
  heartbeatCount: number;
  /** Last reported state per deployment ID. */
  deploymentStates: Record<string, DeploymentStateRecord>;
  /** Heartbeat interval advised to this agent only; undefined → the control plane's. */
  heartbeatIntervalSeconds: number | undefined;
}

export type DeploymentTarget = { agentId: string } | { environmentId: string };

/** A published deployment: the signed wire object plus what the fake needs to serve it. */
export interface PublishedDeployment {
  deploymentId: string;
  target: DeploymentTarget;
  environmentId: string;
  /** Exactly what GET …/deployment answers (signed). */
  body: Deployment;
  /** Strong, quoted ETag derived from the body. */
  etag: string;
  /** The bytes served at bundle.url (not necessarily what bundle.sha256/size_bytes claim). */
  bundle: Buffer;
  bundleSha256: string;
  publishedAt: number;
  /** Publication order; the newest deployment targeting an agent wins. */
  seq: number;
}

export interface ArtifactRecord {
  artifactId: string;
  agentId: string;
  environmentId: string;
  type: string;
  sha256: string;
  sizeBytes: number;
  filename: string;
  contentType: string | undefined;
  labels: Record<string, string>;
  capturedAt: string;
  /** How many later uploads of the same content were answered 200 deduplicated. */
  dedupCount: number;
  receivedAt: number;
}

export interface RequestRecord {
  /** The X-Request-Id the response carried. */
  id: string;
  route: RecordedRoute;
  method: string;
  url: string;
  path: string;
  query: Record<string, string>;
  /** Lowercased names; includes authorization on purpose (tests assert on it). */
  headers: Record<string, string>;
  /** The parsed body when it was JSON. */
  json: unknown;
  /** Request body bytes read (for artifacts: counted while streaming, never kept). */
  bodyBytes: number;
  at: number;
  /** Response status; 0 for a dropped connection (network error); -1 while still pending. */
  status: number;
}

export interface FaultOptions {
  /** Answer this status instead of handling the request. */
  status?: number;
  /** How many requests the fault applies to (default 1; Infinity for all). */
  times?: number;
  /** Retry-After header value, verbatim (delta-seconds or an HTTP-date). */
  retryAfter?: string;
  /** Body for `status`: a string is sent as is (text/html when it looks like HTML), else JSON. */
  body?: unknown;
  /** Extra response headers for `status`. */
  headers?: Record<string, string>;
  /** Wait this long before answering (fake-timer controlled; aborts with the request). */
  delayMs?: number;
  /** Drop the connection (a network error) instead of answering. */
  drop?: true;
  /** Bundle downloads: the body stream fails after this many bytes (connection lost mid-body). */
  truncateAfterBytes?: number;
  /** Bundle downloads: answer 200 with the whole body even to a Range request. */
  ignoreRange?: true;
}

export type FaultRoute = RouteName | '*';

export interface ArtifactBudget {
  limit: number;
  windowMs: number;
}
