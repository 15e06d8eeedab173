import type { ArtifactResponse, Deployment, EnrollResponse, HeartbeatResponse, Jwks, Posture } from './types.js';

/** Shape checks for what the control plane sends; each returns the problem, or undefined. */

type Obj = Record<string, unknown>;

const isObj = (value: unknown): value is Obj => value !== null && typeof value === 'object' && !Array.isArray(value);
const isStr = (value: unknown): value is string => typeof value === 'string' && value.length > 0;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const PATH_SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function enrollResponseProblem(body: unknown): string | undefined {
  if (!isObj(body)) return 'not a JSON object';
  for (const field of ['agent_id', 'api_key', 'org_id', 'project_id', 'environment_id'] as const) {
    if (!isStr(body[field])) return `missing ${field}`;
  }
  if (!PATH_SAFE_ID.test(body.agent_id as string)) return 'agent_id is not a path-safe ID';
  if (!/^[\x21-\x7e]{8,4096}$/.test(body.api_key as string)) return 'api_key is malformed';
  if (!Array.isArray(body.scopes) || !body.scopes.every((s) => typeof s === 'string')) return 'scopes is not a list of strings';
  if (!['dev', 'staging', 'prod'].includes(body.environment_posture as string)) return 'environment_posture is not dev, staging or prod';
  return undefined;
}

export function asEnrollResponse(body: Obj): EnrollResponse {
  return {
    agent_id: body.agent_id as string,
    name: typeof body.name === 'string' ? body.name : '',
    api_key: body.api_key as string,
    scopes: body.scopes as string[],
    org_id: body.org_id as string,
    project_id: body.project_id as string,
    environment_id: body.environment_id as string,
    environment_posture: body.environment_posture as Posture,
    heartbeat_interval_seconds: typeof body.heartbeat_interval_seconds === 'number' ? body.heartbeat_interval_seconds : 30,
  };
}

export function heartbeatResponseProblem(body: unknown): string | undefined {
  if (!isObj(body)) return 'not a JSON object';
  if (body.heartbeat_interval_seconds !== undefined && typeof body.heartbeat_interval_seconds !== 'number') return 'heartbeat_interval_seconds is not a number';
  return undefined;
}

export function asHeartbeatResponse(body: Obj): HeartbeatResponse {
  return {
    server_time: typeof body.server_time === 'string' ? body.server_time : '',
    heartbeat_interval_seconds: typeof body.heartbeat_interval_seconds === 'number' ? body.heartbeat_interval_seconds : 30,
  };
}

export function deploymentProblem(body: unknown): string | undefined {
  if (!isObj(body)) return 'not a JSON object';
  for (const field of ['deployment_id', 'version_id', 'environment_id', 'created_at'] as const) {
    if (!isStr(body[field])) return `missing ${field}`;
  }
  if (!PATH_SAFE_ID.test(body.deployment_id as string)) return 'deployment_id is not a path-safe ID';
  const bundle = body.bundle;
  if (!isObj(bundle)) return 'missing bundle';
  if (!isStr(bundle.url)) return 'missing bundle.url';
  if (typeof bundle.sha256 !== 'string' || !SHA256_HEX.test(bundle.sha256)) return 'bundle.sha256 is not 64 lowercase hex digits';
  if (typeof bundle.size_bytes !== 'number' || !Number.isSafeInteger(bundle.size_bytes) || bundle.size_bytes < 0) return 'bundle.size_bytes is not a non-negative integer';
  if (body.approval_credential !== null && body.approval_credential !== undefined && typeof body.approval_credential !== 'string') return 'approval_credential is neither null nor a string';
  const sig = body.signature;
  if (!isObj(sig) || !isStr(sig.kid) || !isStr(sig.alg) || !isStr(sig.value)) return 'missing signature {kid, alg, value}';
  return undefined;
}

export function asDeployment(body: Obj): Deployment {
  // Verbatim: adding or normalising a member would change the JSON the signature covers.
  return body as Deployment;
}

export function jwksProblem(body: unknown): string | undefined {
  if (!isObj(body)) return 'not a JSON object';
  if (!Array.isArray(body.keys)) return 'missing keys array';
  if (!body.keys.every(isObj)) return 'keys holds a non-object';
  return undefined;
}

export function asJwks(body: Obj): Jwks {
  return { keys: body.keys as Jwks['keys'] };
}

export function artifactResponseProblem(body: unknown): string | undefined {
  if (!isObj(body)) return 'not a JSON object';
  if (!isStr(body.artifact_id)) return 'missing artifact_id';
  return undefined;
}

export function asArtifactResponse(body: Obj): ArtifactResponse {
  return {
    artifact_id: body.artifact_id as string,
    sha256: typeof body.sha256 === 'string' ? body.sha256 : '',
    deduplicated: body.deduplicated === true,
  };
}
