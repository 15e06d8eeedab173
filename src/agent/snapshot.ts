import { readFile } from 'node:fs/promises';
import type { Config } from '../config/config.js';
import { hostMetadata } from '../host/metadata.js';
import { hostMetrics } from '../host/metrics.js';
import type { StateLayout } from '../state/layout.js';
import { readStatusFile } from '../state/status-file.js';
import { AGENT_VERSION } from '../version.js';
import { outboxCounts, rejectedEntries } from './outbox-counts.js';

/**
 * The `snapshot` artifact: what the agent knows about itself and its host, for whoever debugs it
 * from the console. Read-only: status.json (written by the running agent) for its view of
 * deployments, jobs and problems, state.json as a fallback when it never ran, and live host facts.
 * No credential is read into it (status.json and state.json hold none; the env file is not read).
 */
export interface SnapshotInput {
  config: Pick<Config, 'agentId' | 'apiBaseUrl' | 'envFile' | 'stateDir' | 'environmentId' | 'environmentPosture' | 'labels'>;
  layout: StateLayout;
  now: () => number;
}

async function readJson(path: string): Promise<{ value: unknown } | { problem: string }> {
  try {
    return { value: JSON.parse(await readFile(path, 'utf8')) as unknown };
  } catch (err) {
    return { problem: (err as NodeJS.ErrnoException).code ?? 'not valid JSON' };
  }
}

export async function buildSnapshot(input: SnapshotInput): Promise<Record<string, unknown>> {
  const { config, layout, now } = input;
  const [meta, metrics, statusRead, counts, rejected] = await Promise.all([
    hostMetadata(),
    hostMetrics(layout.root),
    readStatusFile(layout.statusFile),
    outboxCounts(layout),
    rejectedEntries(layout).catch(() => []),
  ]);
  const doc = statusRead.kind === 'ok' ? statusRead.doc : undefined;
  const state = doc === undefined ? await readJson(layout.stateFile) : undefined;
  const stateDeployment = state !== undefined && 'value' in state ? (state.value as { deployment?: Record<string, unknown> }).deployment : undefined;
  return {
    schema: 1,
    kind: 'byteor-agent-snapshot',
    captured_at: new Date(now()).toISOString(),
    agent: {
      agent_id: config.agentId ?? null,
      agent_version: AGENT_VERSION,
      node_version: process.versions.node,
      api_base_url: config.apiBaseUrl?.href ?? null,
      env_file: config.envFile,
      state_dir: config.stateDir,
      environment_id: config.environmentId ?? null,
      environment_posture: config.environmentPosture ?? null,
      labels: config.labels,
    },
    host: { ...meta, metrics },
    running:
      doc === undefined
        ? { known: false, problem: statusRead.kind === 'missing' ? 'no status.json: the agent has not run yet' : statusRead.kind === 'unreadable' ? statusRead.problem : null }
        : { known: true, state: doc.state, pid: doc.pid, started_at: doc.started_at, updated_at: doc.updated_at, heartbeat: doc.heartbeat, jobs: doc.jobs, signing_keys: doc.signing_keys },
    deployment: doc?.deployment ?? (stateDeployment === undefined ? null : { current: stateDeployment.current ?? null, previous: stateDeployment.previous ?? null, failed: stateDeployment.failed ?? null }),
    problems: doc?.problems ?? [],
    outbox: { ...counts, rejected_entries: rejected },
  };
}
