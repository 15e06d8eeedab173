import { randomBytes } from 'node:crypto';
import { FaultBook } from './faults.js';
import { newId } from './ids.js';
import { SigningKeys } from './keys.js';
import type {
  AgentRecord,
  ArtifactBudget,
  ArtifactRecord,
  EnrollmentTokenRecord,
  Environment,
  HeartbeatRecord,
  Posture,
  PublishedDeployment,
  RequestRecord,
  StatusReportRecord,
} from './types.js';

export const DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 30;

/**
 * Everything the fake control plane knows, in one object so ControlPlane.reset() can swap in a
 * fresh one (a clean slate per test without re-registering msw handlers).
 * Internal: the route handlers read and write it; tests use ControlPlane's methods.
 */
export interface State {
  environments: Map<string, Environment>;
  defaultEnvironmentId: string;
  tokens: Map<string, EnrollmentTokenRecord>;
  agents: Map<string, AgentRecord>;
  agentsByKey: Map<string, AgentRecord>;
  keys: SigningKeys;
  /** When set, the signing-keys route serves this instead of the real set. */
  jwksOverride: { body: unknown } | undefined;
  deployments: Map<string, PublishedDeployment>;
  /** 'agent:<id>' or 'env:<id>' → deployment ID targeting it. */
  targets: Map<string, string>;
  deploymentSeq: number;
  requests: RequestRecord[];
  heartbeats: HeartbeatRecord[];
  statusReports: StatusReportRecord[];
  artifacts: ArtifactRecord[];
  faults: FaultBook;
  artifactBudget: ArtifactBudget | undefined;
  /** Per runtime key: the current fixed budget window. */
  budgetWindows: Map<string, { start: number; count: number }>;
  heartbeatIntervalSeconds: number;
  ready: boolean;
  /** Signs pre-signed storage URLs (X-Sig), like a storage service's secret. */
  storageSecret: Buffer;
}

export function newEnvironment(options: { orgId?: string; projectId?: string; environmentId?: string; posture?: Posture }): Environment {
  return {
    orgId: options.orgId ?? newId('org'),
    projectId: options.projectId ?? newId('prj'),
    environmentId: options.environmentId ?? newId('env'),
    posture: options.posture ?? 'dev',
  };
}

export function freshState(defaults: { posture: Posture; environment?: { orgId?: string; projectId?: string; environmentId?: string } }): State {
  const env = newEnvironment({ ...defaults.environment, posture: defaults.posture });
  const keys = new SigningKeys();
  keys.add();
  return {
    environments: new Map([[env.environmentId, env]]),
    defaultEnvironmentId: env.environmentId,
    tokens: new Map(),
    agents: new Map(),
    agentsByKey: new Map(),
    keys,
    jwksOverride: undefined,
    deployments: new Map(),
    targets: new Map(),
    deploymentSeq: 0,
    requests: [],
    heartbeats: [],
    statusReports: [],
    artifacts: [],
    faults: new FaultBook(),
    artifactBudget: undefined,
    budgetWindows: new Map(),
    heartbeatIntervalSeconds: DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    ready: true,
    storageSecret: randomBytes(32),
  };
}
