import type { AgentClient } from '../../api/client.js';
import type { Deployment } from '../../api/types.js';
import type { StateStore } from '../../state/agent-state.js';
import type { Job } from '../scheduler.js';

export const DEPLOYMENT_INTERVAL_MS = 60_000;

/**
 * Where fetched deployments go: the bundle pipeline. `handle` gets a new or changed deployment;
 * `reconcile` runs on every unchanged fetch so interrupted or backed-off work is resumed.
 * Throwing a retryable error makes the fetch retry (and the ETag is not advanced).
 */
export interface DeploymentHandler {
  handle(deployment: Deployment, signal: AbortSignal): Promise<void>;
  reconcile(signal: AbortSignal): Promise<void>;
  /** No deployment targets this agent any more (204). */
  cleared(signal: AbortSignal): Promise<void>;
}

export class DeploymentJob implements Job {
  readonly name = 'deployment';

  constructor(
    private readonly client: AgentClient,
    private readonly store: StateStore,
    private readonly handler: DeploymentHandler,
    private readonly interval: number = DEPLOYMENT_INTERVAL_MS,
  ) {}

  intervalMs(): number {
    return this.interval;
  }

  startupSpreadMs(): number {
    // A fresh install fetches right away, and so does an agent whose download or activation a
    // restart interrupted (the first run finishes it). Any other restart spreads over the whole
    // interval, like the heartbeat: its bundle is still active, and a restarted fleet must not
    // fetch all at once (half a minute doubled the deployment rate for that half minute; see
    // startupDelay).
    const { heartbeat, deployment } = this.store.state;
    return heartbeat.sequence === 0 || deployment.work !== null ? 1_000 : this.interval;
  }

  async run(signal: AbortSignal): Promise<void> {
    const etag = this.store.state.etags.deployment ?? undefined;
    const result = await this.client.getDeployment(etag, signal);
    switch (result.kind) {
      case 'not_modified':
        await this.handler.reconcile(signal);
        return;
      case 'none':
        await this.handler.cleared(signal);
        await this.store.update((s) => {
          s.etags.deployment = null;
        });
        return;
      case 'deployment':
        await this.handler.handle(result.deployment, signal);
        // Only once handled: a crash or a retryable failure before this refetches and redoes it.
        await this.store.update((s) => {
          s.etags.deployment = result.etag ?? null;
        });
        return;
    }
  }
}
