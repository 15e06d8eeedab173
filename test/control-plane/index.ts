/**
 * The fake ByteOr control plane (one stateful implementation of API.md) for tests, e2e runs and
 * manual work. In-process: setupControlPlane() in a vitest file. Over real HTTP:
 * startControlPlaneServer() or `npx tsx scripts/control-plane.ts`.
 */
export { ControlPlane, DEFAULT_STORAGE_ORIGIN, type ControlPlaneOptions, type CreateAgentOptions, type IssueEnrollmentTokenOptions } from './control-plane.js';
export { createHandlers, dispatch, type HandlerOptions } from './handlers.js';
export { setupControlPlane, DEFAULT_BASE_URL, type ControlPlaneHarness, type SetupControlPlaneOptions } from './vitest.js';
export { startControlPlaneServer, type ControlPlaneServer, type ControlPlaneServerOptions } from './http-server.js';
export { ADMIN_ROUTES } from './admin.js';
export { buildBundle, buildBundleSync, bundleFromDirectory, listBundle, readBundleFile, type BundleEntry, type BundleFiles } from './bundles.js';
export { deploymentSigningInput, type PublishDeploymentOptions } from './deployments.js';
export { decodeApprovalCredential, type ApprovalCredentialOptions, type ApprovalOverrides, type ApprovalPayload } from './approval.js';
export { canonicalJson, sha256Hex, specHash } from './crypto.js';
export { abortableDelay } from './faults.js';
export type { AddSigningKeyOptions } from './keys.js';
export { IDEMPOTENCY_WINDOW_MS } from './route-enroll.js';
export { MULTIPART_OVERHEAD_BYTES } from './route-artifacts.js';
export { ROUTES } from './types.js';
export type {
  AgentRecord,
  ArtifactBudget,
  ArtifactRecord,
  DeploymentStateRecord,
  DeploymentTarget,
  Environment,
  FaultOptions,
  FaultRoute,
  HeartbeatRecord,
  PublishedDeployment,
  RecordedRoute,
  RequestRecord,
  RouteName,
  StatusReportRecord,
} from './types.js';
export { artifactForm, sampleEnrollBody, sampleHeartbeat, type ArtifactForm } from './fixtures.js';
