/** Wire shapes of API.md. Field names are the wire's (snake_case). */

export type Posture = 'dev' | 'staging' | 'prod';

export const RUNTIME_SCOPES = ['agent:heartbeat', 'agent:deployment_read', 'agent:signing_keys_read', 'agent:artifact_upload'] as const;
export type RuntimeScope = (typeof RUNTIME_SCOPES)[number];

export interface HostOs {
  platform: string;
  distro: string;
  release: string;
  kernel: string;
}

export interface EnrollRequest {
  name?: string;
  hostname: string;
  os: HostOs;
  arch: string;
  runtime: { agent_version: string; node_version: string };
  labels: Record<string, string>;
}

export interface EnrollResponse {
  agent_id: string;
  name: string;
  api_key: string;
  scopes: string[];
  org_id: string;
  project_id: string;
  environment_id: string;
  environment_posture: Posture;
  heartbeat_interval_seconds: number;
}

export type HealthStatus = 'healthy' | 'degraded';

export interface Problem {
  code: string;
  message: string;
}

export interface HeartbeatDeployment {
  deployment_id: string;
  bundle_sha256: string;
  state: DeploymentState;
}

export interface HostMetrics {
  hostname: string;
  uptime_seconds: number;
  load1: number;
  cpu_count: number;
  mem_total_bytes: number;
  mem_available_bytes: number;
  disk_free_bytes: number;
}

export interface HeartbeatRequest {
  sent_at: string;
  sequence: number;
  status: HealthStatus;
  agent_version: string;
  started_at: string;
  deployment: HeartbeatDeployment | null;
  host: HostMetrics;
  outbox: { pending: number; pending_bytes: number; rejected: number };
  problems: Problem[];
}

export interface HeartbeatResponse {
  server_time: string;
  heartbeat_interval_seconds: number;
}

export interface BundleRef {
  url: string;
  sha256: string;
  size_bytes: number;
  format: string;
}

export interface DeploymentSignature {
  kid: string;
  alg: string;
  value: string;
}

/** As received: the signature covers every member but `signature`, so unknown members are kept. */
export interface Deployment {
  deployment_id: string;
  version_id: string;
  environment_id: string;
  created_at: string;
  bundle: BundleRef;
  /** Absent and null both mean none; kept exactly as received because the signature covers it. */
  approval_credential?: string | null;
  signature: DeploymentSignature;
  [member: string]: unknown;
}

export type DeploymentState = 'downloading' | 'verifying' | 'active' | 'failed' | 'rolled_back';

export const FAILURE_REASONS = [
  'digest_mismatch',
  'size_mismatch',
  'signature_invalid',
  'unknown_key',
  'approval_invalid',
  'unsafe_archive',
  'archive_too_large',
  'disk_full',
  'activation_failed',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export interface DeploymentStatusReport {
  state: DeploymentState;
  bundle_sha256: string;
  reported_at: string;
  reason: FailureReason | null;
  message: string | null;
}

export interface Jwk {
  kty: string;
  crv?: string;
  kid?: string;
  alg?: string;
  use?: string;
  x?: string;
  exp?: number;
  [member: string]: unknown;
}

export interface Jwks {
  keys: Jwk[];
}

export const ARTIFACT_TYPES = ['incident_bundle', 'snapshot', 'diagnostic'] as const;
export type ArtifactType = (typeof ARTIFACT_TYPES)[number];
export const MAX_ARTIFACT_BYTES = 64 * 1024 * 1024;

export interface ArtifactMetadata {
  type: ArtifactType;
  sha256: string;
  size_bytes: number;
  captured_at: string;
  filename: string;
  labels: Record<string, string>;
}

export interface ArtifactResponse {
  artifact_id: string;
  sha256: string;
  deduplicated: boolean;
}
