import { readFile } from 'node:fs/promises';
import type { ActiveDeployment, FailedDeployment } from './agent-state.js';
import { saveJsonFile } from './json-file.js';

export type AgentHealthState = 'starting' | 'healthy' | 'degraded' | 'unauthorized' | 'stopped';

export interface StatusProblem {
  code: string;
  message: string;
  fix: string;
  since: string;
}

export interface StatusJob {
  last_run_at: string | null;
  last_success_at: string | null;
  last_error: string | null;
  consecutive_failures: number;
  next_run_at: string | null;
}

export interface RejectedEntry {
  name: string;
  type: string;
  reason: string;
  rejected_at: string | null;
}

/** status.json (schema 1): what the running agent says about itself, for `byteor-agent status`. */
export interface StatusDocument {
  schema: 1;
  agent_id: string;
  agent_version: string;
  pid: number;
  api_base_url: string;
  env_file: string;
  state_dir: string;
  started_at: string;
  updated_at: string;
  state: AgentHealthState;
  heartbeat: {
    last_success_at: string | null;
    last_attempt_at: string | null;
    last_error: string | null;
    sequence: number;
    interval_seconds: number;
    consecutive_failures: number;
  };
  deployment: {
    current: ActiveDeployment | null;
    previous: ActiveDeployment | null;
    target: { deployment_id: string; bundle_sha256: string | null; seen_at: string } | null;
    failed: FailedDeployment | null;
  };
  outbox: { pending: number; pending_bytes: number; rejected: number; rejected_entries: RejectedEntry[] };
  signing_keys: { kids: string[]; fetched_at: string | null };
  jobs: Record<string, StatusJob>;
  problems: StatusProblem[];
}

export async function writeStatusFile(path: string, doc: StatusDocument): Promise<void> {
  await saveJsonFile(path, doc);
}

export type StatusRead = { kind: 'ok'; doc: StatusDocument } | { kind: 'missing' } | { kind: 'unreadable'; problem: string };

export async function readStatusFile(path: string): Promise<StatusRead> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'unreadable', problem: code === 'EACCES' ? 'permission denied (run as root or the byteor-agent user)' : (code ?? 'unreadable') };
  }
  try {
    const doc = JSON.parse(text) as StatusDocument;
    if (doc.schema !== 1 || typeof doc.state !== 'string') return { kind: 'unreadable', problem: 'unknown status.json format' };
    return { kind: 'ok', doc };
  } catch {
    return { kind: 'unreadable', problem: 'status.json is not valid JSON' };
  }
}
