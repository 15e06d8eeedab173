import type { AgentClient } from '../../api/client.js';
import type { HeartbeatRequest, HostMetrics } from '../../api/types.js';
import type { StateStore } from '../../state/agent-state.js';
import { AGENT_VERSION } from '../../version.js';
import type { Health } from '../health.js';
import type { Job } from '../scheduler.js';

export const DEFAULT_HEARTBEAT_INTERVAL_S = 30;
export const MIN_HEARTBEAT_INTERVAL_S = 5;
export const MAX_HEARTBEAT_INTERVAL_S = 3600;
/**
 * A fresh install's first heartbeat goes out within this long after the runtime starts. With the
 * process start (~0.2 s for the bundle or the standalone binary) it stays within 1 s of spawn;
 * a 1 s spread on top of that missed 1 s in about one start in six (scripts/bench/footprint.ts).
 */
export const FRESH_HEARTBEAT_SPREAD_MS = 500;

/** The server's advice, clamped to [5, 3600] s (API.md §2); garbage keeps the current interval. */
export function adoptInterval(advisedSeconds: unknown, currentSeconds: number): number {
  if (typeof advisedSeconds !== 'number' || !Number.isFinite(advisedSeconds)) return currentSeconds;
  return Math.min(MAX_HEARTBEAT_INTERVAL_S, Math.max(MIN_HEARTBEAT_INTERVAL_S, advisedSeconds));
}

export interface OutboxCounts {
  pending: number;
  pending_bytes: number;
  rejected: number;
}

export interface HeartbeatDeps {
  client: AgentClient;
  store: StateStore;
  health: Health;
  hostMetrics: () => Promise<HostMetrics>;
  outboxCounts: () => Promise<OutboxCounts>;
  startedAt: string;
  now: () => number;
  /** Heartbeat interval override (ms) for tests and the demo; the server's advice is ignored then. */
  fixedIntervalMs?: number | undefined;
}

export class HeartbeatJob implements Job {
  readonly name = 'heartbeat';

  constructor(private readonly deps: HeartbeatDeps) {}

  private get intervalSeconds(): number {
    return this.deps.store.state.heartbeat.interval_seconds ?? DEFAULT_HEARTBEAT_INTERVAL_S;
  }

  intervalMs(): number {
    return this.deps.fixedIntervalMs ?? this.intervalSeconds * 1000;
  }

  startupSpreadMs(): number {
    // A host that never sent a heartbeat was just installed: the installer is waiting on it, and
    // fresh enrollments are already spread by the enrollment flow. A restart (power restore, upgrade
    // of the whole fleet) spreads its first heartbeat over a whole interval.
    return this.deps.store.state.heartbeat.sequence === 0 ? FRESH_HEARTBEAT_SPREAD_MS : this.intervalMs();
  }

  async run(signal: AbortSignal): Promise<void> {
    const { store, health, client } = this.deps;
    // Persist the sequence before sending: after a crash the next heartbeat never reuses a number.
    const sequence = store.state.heartbeat.sequence + 1;
    await store.update((s) => {
      s.heartbeat.sequence = sequence;
    });
    const [host, outbox] = await Promise.all([this.deps.hostMetrics(), this.deps.outboxCounts()]);
    const problems = health.heartbeatProblems();
    const current = store.state.deployment.current;
    const body: HeartbeatRequest = {
      sent_at: new Date(this.deps.now()).toISOString(),
      sequence,
      status: problems.length > 0 ? 'degraded' : 'healthy',
      agent_version: AGENT_VERSION,
      started_at: this.deps.startedAt,
      deployment: current === null ? null : { deployment_id: current.deployment_id, bundle_sha256: current.bundle_sha256, state: current.state },
      host,
      outbox,
      problems,
    };
    const response = await client.heartbeat(body, signal);
    await store.update((s) => {
      s.heartbeat.last_success_at = new Date(this.deps.now()).toISOString();
      s.heartbeat.interval_seconds = adoptInterval(response.heartbeat_interval_seconds, this.intervalSeconds);
    });
  }
}
