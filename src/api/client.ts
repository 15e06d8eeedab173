import { discardBody } from './body.js';
import { TransientError } from './errors.js';
import { encodeArtifactForm, type BodySource } from './multipart.js';
import { Transport, type Sent, type TransportOptions } from './transport.js';
import type {
  ArtifactMetadata,
  ArtifactResponse,
  Deployment,
  DeploymentStatusReport,
  EnrollRequest,
  EnrollResponse,
  HeartbeatRequest,
  HeartbeatResponse,
  Jwks,
} from './types.js';
import {
  artifactResponseProblem,
  asArtifactResponse,
  asDeployment,
  asEnrollResponse,
  asHeartbeatResponse,
  asJwks,
  deploymentProblem,
  enrollResponseProblem,
  heartbeatResponseProblem,
  jwksProblem,
} from './validate.js';
import type { RequestFacts } from './errors.js';

type Obj = Record<string, unknown>;

function checked<T>(facts: RequestFacts, body: unknown, problem: (body: unknown) => string | undefined, as: (body: Obj) => T): T {
  const found = problem(body);
  if (found !== undefined) throw new TransientError(facts, 'protocol', `unexpected response: ${found}`);
  return as(body as Obj);
}

const seg = encodeURIComponent;

export type DeploymentFetch =
  | { kind: 'deployment'; deployment: Deployment; etag: string | undefined }
  | { kind: 'not_modified' }
  | { kind: 'none' };

export type SigningKeysFetch = { kind: 'keys'; jwks: Jwks; etag: string | undefined } | { kind: 'not_modified' };

export interface ArtifactUpload {
  metadata: ArtifactMetadata;
  /**
   * The bytes: a Blob, or a source streaming from disk (agent/outbox: fileSource). Its type becomes
   * the part's Content-Type and its size must be exact (the request declares Content-Length). Open
   * a fresh one per attempt.
   */
  file: BodySource;
  signal?: AbortSignal | undefined;
  /** Uploads may take long on slow links; the dispatcher's idle timeouts still apply. */
  timeoutMs?: number | null;
}

export interface AgentClientOptions extends TransportOptions {
  agentId: string;
  apiKey: string;
}

/** The runtime API (API.md §2–§6), authenticated with the per-agent runtime key. */
export class AgentClient {
  readonly transport: Transport;
  readonly agentId: string;
  // A private field: the key is not enumerable, so logging or inspecting the client never shows it.
  readonly #apiKey: string;

  constructor(options: AgentClientOptions) {
    this.transport = new Transport(options);
    this.agentId = options.agentId;
    this.#apiKey = options.apiKey;
  }

  private agentPath(suffix: string): string {
    return `/api/v1/agents/${seg(this.agentId)}${suffix}`;
  }

  async heartbeat(body: HeartbeatRequest, signal?: AbortSignal): Promise<HeartbeatResponse> {
    const res = await this.transport.sendJson({
      method: 'POST',
      target: this.agentPath('/heartbeat'),
      bearer: this.#apiKey,
      json: body,
      signal,
      scope: 'agent:heartbeat',
    });
    return checked(res.facts, res.body, heartbeatResponseProblem, asHeartbeatResponse);
  }

  async getDeployment(etag: string | undefined, signal?: AbortSignal): Promise<DeploymentFetch> {
    const res = await this.transport.sendJson({
      method: 'GET',
      target: this.agentPath('/deployment'),
      bearer: this.#apiKey,
      headers: etag === undefined ? {} : { 'if-none-match': etag },
      acceptStatuses: [304],
      signal,
      scope: 'agent:deployment_read',
    });
    if (res.status === 304) return { kind: 'not_modified' };
    if (res.status === 204) return { kind: 'none' };
    const deployment = checked(res.facts, res.body, deploymentProblem, asDeployment);
    return { kind: 'deployment', deployment, etag: res.headers.get('etag') ?? undefined };
  }

  /**
   * Opens a bundle download (API.md §4), from `offset` when resuming. The caller streams the body
   * and must call finish(). 206 answers a range; 200 may answer one too (the server ignored it);
   * 416 means the range is past the end.
   */
  async openBundle(url: string, options: { offset?: number; signal?: AbortSignal | undefined } = {}): Promise<Sent> {
    const offset = options.offset ?? 0;
    return this.transport.send({
      method: 'GET',
      target: url,
      bearer: this.#apiKey,
      headers: { accept: 'application/gzip, application/octet-stream', ...(offset > 0 ? { range: `bytes=${offset}-` } : {}) },
      acceptStatuses: [416],
      signal: options.signal,
      timeoutMs: null,
      scope: 'agent:deployment_read',
    });
  }

  async reportDeploymentStatus(deploymentId: string, report: DeploymentStatusReport, signal?: AbortSignal): Promise<void> {
    await this.transport.sendJson({
      method: 'POST',
      target: this.agentPath(`/deployments/${seg(deploymentId)}/status`),
      bearer: this.#apiKey,
      json: report,
      signal,
      scope: 'agent:deployment_read',
    });
  }

  async getSigningKeys(etag: string | undefined, signal?: AbortSignal): Promise<SigningKeysFetch> {
    const res = await this.transport.sendJson({
      method: 'GET',
      target: this.agentPath('/signing-keys'),
      bearer: this.#apiKey,
      headers: etag === undefined ? {} : { 'if-none-match': etag },
      acceptStatuses: [304],
      signal,
      scope: 'agent:signing_keys_read',
    });
    if (res.status === 304) return { kind: 'not_modified' };
    const jwks = checked(res.facts, res.body, jwksProblem, asJwks);
    return { kind: 'keys', jwks, etag: res.headers.get('etag') ?? undefined };
  }

  async uploadArtifact(upload: ArtifactUpload): Promise<ArtifactResponse & { status: number }> {
    const form = encodeArtifactForm(JSON.stringify(upload.metadata), upload.file, upload.metadata.filename);
    const res = await this.transport.sendJson({
      method: 'POST',
      target: this.agentPath('/artifacts'),
      bearer: this.#apiKey,
      headers: { 'content-type': form.contentType, 'content-length': String(form.contentLength) },
      body: form.body,
      signal: upload.signal,
      timeoutMs: upload.timeoutMs === undefined ? null : upload.timeoutMs,
      scope: 'agent:artifact_upload',
    });
    return { ...checked(res.facts, res.body, artifactResponseProblem, asArtifactResponse), status: res.status };
  }
}

export interface EnrollCall {
  orgId: string;
  projectId: string;
  environmentId: string;
  token: string;
  idempotencyKey: string;
  request: EnrollRequest;
  signal?: AbortSignal | undefined;
}

/** API.md §1: authenticated with the single-use enrollment token, never with a runtime key. */
export async function enrollAgent(transport: Transport, call: EnrollCall): Promise<EnrollResponse> {
  const res = await transport.sendJson({
    method: 'POST',
    target: `/api/v1/orgs/${seg(call.orgId)}/projects/${seg(call.projectId)}/environments/${seg(call.environmentId)}/agents`,
    bearer: call.token,
    headers: { 'idempotency-key': call.idempotencyKey },
    json: call.request,
    signal: call.signal,
    scope: 'agent:enroll',
  });
  return checked(res.facts, res.body, enrollResponseProblem, asEnrollResponse);
}

/** API.md §8: unauthenticated liveness/readiness; returns the status and the server's Date. */
export async function probeHealth(transport: Transport, path: '/healthz' | '/readyz', signal?: AbortSignal): Promise<{ status: number; date: string | null }> {
  const sent = await transport.send({ method: 'GET', target: path, signal, acceptStatuses: [503], timeoutMs: 10_000 });
  sent.finish();
  discardBody(sent.response.body);
  return { status: sent.response.status, date: sent.response.headers.get('date') };
}
