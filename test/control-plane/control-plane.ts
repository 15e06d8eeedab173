import type { Deployment, Jwks } from '../../src/api/types.js';
import { ALL_RUNTIME_SCOPES, insertAgent } from './agents.js';
import { buildApprovalPayload, encodeApprovalCredential, type ApprovalCredentialOptions, type ApprovalOverrides } from './approval.js';
import { readBundleFile } from './bundles.js';
import { contentEtag, sha256Hex } from './crypto.js';
import {
  relativeBundlePath,
  signDeployment,
  storagePath,
  storageSignature,
  type PublishDeploymentOptions,
} from './deployments.js';
import { newEnrollmentToken, newId } from './ids.js';
import type { AddSigningKeyOptions } from './keys.js';
import { freshState, newEnvironment, type State } from './state.js';
import type {
  AgentRecord,
  ArtifactBudget,
  ArtifactRecord,
  DeploymentTarget,
  Environment,
  FaultOptions,
  FaultRoute,
  HeartbeatRecord,
  Posture,
  PublishedDeployment,
  RecordedRoute,
  RequestRecord,
  StatusReportRecord,
} from './types.js';

export interface ControlPlaneOptions {
  /** Wall clock in ms (default Date.now, looked up per call so vitest fake timers apply). */
  now?: () => number;
  /** Posture of the default environment (default 'dev'). */
  posture?: Posture;
  /** Fixed IDs for the default environment (default: generated). */
  environment?: { orgId?: string; projectId?: string; environmentId?: string };
  /** Origin of pre-signed bundle URLs (default https://storage.byteor.test). */
  storageOrigin?: string;
}

export interface IssueEnrollmentTokenOptions {
  environmentId?: string;
  /** Scopes of the token (default ['agent:enroll']). */
  scopes?: string[];
  /** Lifetime (default 15 minutes). */
  ttlMs?: number;
  /** Scopes of the runtime key the enrolled agent gets (default all four). */
  runtimeScopes?: string[];
}

export interface CreateAgentOptions {
  environmentId?: string;
  name?: string;
  /** Runtime key scopes (default all four). */
  scopes?: string[];
}

const ENROLLMENT_TOKEN_TTL_MS = 15 * 60 * 1000;
export const DEFAULT_STORAGE_ORIGIN = 'https://storage.byteor.test';

/**
 * The fake ByteOr control plane: one stateful implementation of API.md. The msw handlers
 * (createHandlers) and the real HTTP server (startControlPlaneServer) both serve this state;
 * tests arrange it with these methods and assert on what it recorded.
 */
export class ControlPlane {
  readonly now: () => number;
  /** Origin of cross-origin bundle URLs. The HTTP server points it at its second origin. */
  storageOrigin: string;
  private readonly defaults: { posture: Posture; environment?: ControlPlaneOptions['environment'] };
  #state: State;

  constructor(options: ControlPlaneOptions = {}) {
    this.now = options.now ?? (() => Date.now());
    this.storageOrigin = (options.storageOrigin ?? DEFAULT_STORAGE_ORIGIN).replace(/\/+$/, '');
    this.defaults = { posture: options.posture ?? 'dev', environment: options.environment };
    this.#state = freshState(this.defaults);
  }

  /** Internal: the state the route handlers work on. Tests use the methods below. */
  get state(): State {
    return this.#state;
  }

  /** Forgets everything (agents, tokens, keys, deployments, records, faults): a fresh control plane. */
  reset(): void {
    this.#state = freshState(this.defaults);
  }

  // ---- environments ----

  get defaultEnvironment(): Environment {
    return this.environment(this.#state.defaultEnvironmentId);
  }

  environment(environmentId: string): Environment {
    const env = this.#state.environments.get(environmentId);
    if (env === undefined) throw new Error(`unknown environment ${environmentId}`);
    return env;
  }

  environments(): Environment[] {
    return [...this.#state.environments.values()];
  }

  createEnvironment(options: { orgId?: string; projectId?: string; environmentId?: string; posture?: Posture } = {}): Environment {
    const env = newEnvironment(options);
    if (this.#state.environments.has(env.environmentId)) throw new Error(`environment ${env.environmentId} exists`);
    this.#state.environments.set(env.environmentId, env);
    return env;
  }

  // ---- enrollment tokens and agents ----

  issueEnrollmentToken(options: IssueEnrollmentTokenOptions = {}): string {
    const env = this.environment(options.environmentId ?? this.#state.defaultEnvironmentId);
    const token = newEnrollmentToken();
    this.#state.tokens.set(token, {
      token,
      environmentId: env.environmentId,
      scopes: options.scopes ?? ['agent:enroll'],
      runtimeScopes: options.runtimeScopes ?? [...ALL_RUNTIME_SCOPES],
      expiresAt: this.now() + (options.ttlMs ?? ENROLLMENT_TOKEN_TTL_MS),
      usedAt: undefined,
      usedBy: undefined,
      replays: new Map(),
    });
    return token;
  }

  /** Whether the token was used, by which agent; undefined for an unknown token. */
  enrollmentToken(token: string): { environmentId: string; usedAt: number | undefined; usedBy: string | undefined; expiresAt: number } | undefined {
    const record = this.#state.tokens.get(token);
    return record === undefined ? undefined : { environmentId: record.environmentId, usedAt: record.usedAt, usedBy: record.usedBy, expiresAt: record.expiresAt };
  }

  /** An agent with a runtime key, without going through enrollment (for runtime tests). */
  createAgent(options: CreateAgentOptions = {}): { agentId: string; apiKey: string } {
    const env = this.environment(options.environmentId ?? this.#state.defaultEnvironmentId);
    const name = options.name ?? `agent-${this.#state.agents.size + 1}`;
    const agent = insertAgent(this.#state, this.now(), { environmentId: env.environmentId, name, scopes: options.scopes ?? ALL_RUNTIME_SCOPES, createdBy: 'direct' });
    return { agentId: agent.agentId, apiKey: agent.apiKey };
  }

  /** The live record (read-only by convention). Throws for an unknown agent. */
  agent(agentId: string): AgentRecord {
    const agent = this.#state.agents.get(agentId);
    if (agent === undefined) throw new Error(`unknown agent ${agentId}`);
    return agent;
  }

  agents(): AgentRecord[] {
    return [...this.#state.agents.values()];
  }

  setAgentScopes(agentId: string, scopes: string[]): void {
    this.agent(agentId).scopes = [...scopes];
  }

  /** The key answers 401 until restoreAgentKey() (the agent must not delete its credentials). */
  revokeAgentKey(agentId: string): void {
    this.agent(agentId).revoked = true;
  }

  restoreAgentKey(agentId: string): void {
    this.agent(agentId).revoked = false;
  }

  /** The interval heartbeat responses advise: for every agent, or for one. */
  setHeartbeatInterval(seconds: number, agentId?: string): void {
    if (agentId === undefined) this.#state.heartbeatIntervalSeconds = seconds;
    else this.agent(agentId).heartbeatIntervalSeconds = seconds;
  }

  heartbeatIntervalFor(agentId: string): number {
    return this.#state.agents.get(agentId)?.heartbeatIntervalSeconds ?? this.#state.heartbeatIntervalSeconds;
  }

  // ---- signing keys ----

  addSigningKey(options: AddSigningKeyOptions = {}): string {
    return this.#state.keys.add(options);
  }

  /** Unpublishes the key (what it signed stays signed by it). */
  removeSigningKey(kid: string): void {
    if (!this.#state.keys.remove(kid)) throw new Error(`no published signing key ${kid}`);
  }

  /** The key set the signing-keys route serves (unless overridden). */
  jwks(): Jwks {
    return this.#state.keys.jwks();
  }

  /** The current default signing key: the newest published one. */
  currentKid(): string {
    return this.#state.keys.defaultKid();
  }

  /** Serve this body (JSON, or a string verbatim) instead of the key set; undefined restores. */
  setJwksOverride(body: unknown): void {
    this.#state.jwksOverride = body === undefined ? undefined : { body };
  }

  /** Ed25519 signature (base64url) by a control-plane key, for tests that craft signed objects. */
  sign(data: Uint8Array | string, kid?: string): string {
    return this.#state.keys.sign(kid ?? this.currentKid(), data);
  }

  // ---- deployments ----

  publishDeployment(options: PublishDeploymentOptions): Deployment {
    const state = this.#state;
    let target: DeploymentTarget;
    let environmentId: string;
    if (options.agentId !== undefined) {
      const agent = this.agent(options.agentId);
      target = { agentId: agent.agentId };
      environmentId = agent.environmentId;
    } else {
      environmentId = this.environment(options.environmentId ?? state.defaultEnvironmentId).environmentId;
      target = { environmentId };
    }
    const env = this.environment(environmentId);
    const bundle = Buffer.from(options.bundle);
    const bundleSha256 = sha256Hex(bundle);
    const deploymentId = options.deploymentId ?? newId('dep');
    const kid = options.kid ?? state.keys.defaultKid();
    if (!state.keys.has(kid)) state.keys.add({ kid, published: false });

    let url: string;
    const mode = options.bundleUrl ?? 'relative';
    if (mode === 'relative') url = relativeBundlePath(target, deploymentId);
    else if (mode === 'cross-origin') {
      const path = storagePath(deploymentId);
      url = `${this.storageOrigin}${path}?X-Sig=${storageSignature(state.storageSecret, path)}`;
    } else url = mode;

    let approval = options.approvalCredential;
    if (approval === undefined) {
      approval = env.posture === 'dev' ? null : this.issueApprovalCredential({}, { environmentId, kid: state.keys.isPublished(kid) ? kid : undefined, specKv: readBundleFile(bundle, 'spec.kv') ?? '' });
    }

    const unsigned = {
      deployment_id: deploymentId,
      version_id: options.versionId ?? newId('ver'),
      environment_id: environmentId,
      created_at: new Date(this.now()).toISOString(),
      bundle: {
        url,
        sha256: options.sha256Override ?? bundleSha256,
        size_bytes: options.sizeOverride ?? bundle.length,
        format: 'tar+gzip',
      },
      approval_credential: approval,
      ...options.extra,
    };
    const body = signDeployment(state.keys, unsigned, kid);
    if (options.signatureOverride !== undefined) body.signature = { ...body.signature, ...options.signatureOverride };
    options.afterSigning?.(body);

    state.deploymentSeq += 1;
    const published: PublishedDeployment = {
      deploymentId,
      target,
      environmentId,
      body,
      etag: contentEtag('d', body),
      bundle,
      bundleSha256,
      publishedAt: this.now(),
      seq: state.deploymentSeq,
    };
    state.deployments.set(deploymentId, published);
    state.targets.set(targetKey(target), deploymentId);
    return structuredClone(body);
  }

  /**
   * Stops targeting: one agent's own deployment, an environment's, or (no argument) everything.
   * The deployment route answers 204 to an agent nothing targets any more.
   */
  clearDeployment(target?: DeploymentTarget): void {
    if (target === undefined) this.#state.targets.clear();
    else this.#state.targets.delete(targetKey(target));
  }

  /** A published deployment by ID. */
  deployment(deploymentId: string): PublishedDeployment {
    const found = this.#state.deployments.get(deploymentId);
    if (found === undefined) throw new Error(`unknown deployment ${deploymentId}`);
    return found;
  }

  /** What GET …/deployment serves this agent now: the newest of its own and its environment's. */
  deploymentFor(agentId: string): PublishedDeployment | undefined {
    const agent = this.agent(agentId);
    const candidates = [targetKey({ agentId }), targetKey({ environmentId: agent.environmentId })]
      .map((key) => this.#state.targets.get(key))
      .filter((id): id is string => id !== undefined)
      .map((id) => this.deployment(id));
    return candidates.sort((a, b) => b.seq - a.seq)[0];
  }

  // ---- approval credentials ----

  /** An approval credential v1 (API.md §7); see approval.ts for the signing-input decision. */
  issueApprovalCredential(overrides: ApprovalOverrides = {}, options: ApprovalCredentialOptions = {}): string {
    const env = this.environment(options.environmentId ?? this.#state.defaultEnvironmentId);
    const kid = options.kid ?? this.currentKid();
    if (!this.#state.keys.has(kid)) this.#state.keys.add({ kid, published: false });
    const payload = buildApprovalPayload(env, kid, this.now(), options.specKv ?? '', overrides);
    return encodeApprovalCredential(this.#state.keys, payload, { kid, signWith: options.signWith, tamper: options.tamper });
  }

  // ---- faults, budgets, readiness ----

  /** Arms a fault for the next `times` (default 1) requests of `route` ('*': any route). */
  fault(route: FaultRoute, options: FaultOptions): void {
    this.#state.faults.add(route, options);
  }

  /** While on, every route (not the admin API) drops its connections. */
  outage(on: boolean): void {
    this.#state.faults.outage = on;
  }

  /** Disarms every fault and ends an outage. */
  clearFaults(): void {
    this.#state.faults.clear();
    this.#state.faults.outage = false;
  }

  pendingFaults(): ReturnType<State['faults']['pending']> {
    return this.#state.faults.pending();
  }

  /** Per-runtime-key upload budget: `limit` artifact requests per fixed `windowMs`; undefined lifts it. */
  setArtifactBudget(budget: ArtifactBudget | undefined): void {
    this.#state.artifactBudget = budget;
    this.#state.budgetWindows.clear();
  }

  /** /readyz answers 503 while false. */
  setReady(ready: boolean): void {
    this.#state.ready = ready;
  }

  // ---- records ----

  get requests(): readonly RequestRecord[] {
    return this.#state.requests;
  }

  requestsTo(route: RecordedRoute): RequestRecord[] {
    return this.#state.requests.filter((request) => request.route === route);
  }

  get heartbeats(): readonly HeartbeatRecord[] {
    return this.#state.heartbeats;
  }

  heartbeatsOf(agentId: string): HeartbeatRecord[] {
    return this.#state.heartbeats.filter((heartbeat) => heartbeat.agentId === agentId);
  }

  get statusReports(): readonly StatusReportRecord[] {
    return this.#state.statusReports;
  }

  statusReportsOf(agentId: string): StatusReportRecord[] {
    return this.#state.statusReports.filter((report) => report.agentId === agentId);
  }

  get artifacts(): readonly ArtifactRecord[] {
    return this.#state.artifacts;
  }
}

function targetKey(target: DeploymentTarget): string {
  return 'agentId' in target ? `agent:${target.agentId}` : `env:${target.environmentId}`;
}
