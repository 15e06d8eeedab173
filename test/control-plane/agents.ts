import { RUNTIME_SCOPES } from '../../src/api/types.js';
import { newApiKey, newId } from './ids.js';
import type { State } from './state.js';
import type { AgentRecord } from './types.js';

export const ALL_RUNTIME_SCOPES: readonly string[] = RUNTIME_SCOPES;

export interface NewAgent {
  environmentId: string;
  name: string;
  scopes: readonly string[];
  createdBy: AgentRecord['createdBy'];
  hostname?: string;
  os?: unknown;
  arch?: unknown;
  runtime?: unknown;
  labels?: Record<string, string>;
}

/** A name not yet used in the environment: `base`, then `base-2`, `base-3`, … */
export function uniqueAgentName(state: State, environmentId: string, base: string): string {
  const taken = new Set([...state.agents.values()].filter((agent) => agent.environmentId === environmentId).map((agent) => agent.name));
  if (!taken.has(base)) return base;
  for (let n = 2; ; n += 1) {
    const candidate = `${base}-${n}`;
    if (!taken.has(candidate)) return candidate;
  }
}

export function insertAgent(state: State, now: number, spec: NewAgent): AgentRecord {
  const agent: AgentRecord = {
    agentId: newId('agt'),
    name: spec.name,
    environmentId: spec.environmentId,
    apiKey: newApiKey(),
    scopes: [...spec.scopes],
    revoked: false,
    createdBy: spec.createdBy,
    createdAt: now,
    hostname: spec.hostname ?? spec.name,
    os: spec.os,
    arch: spec.arch,
    runtime: spec.runtime,
    labels: { ...spec.labels },
    lastHeartbeat: undefined,
    heartbeatCount: 0,
    deploymentStates: {},
    heartbeatIntervalSeconds: undefined,
  };
  state.agents.set(agent.agentId, agent);
  state.agentsByKey.set(agent.apiKey, agent);
  return agent;
}
