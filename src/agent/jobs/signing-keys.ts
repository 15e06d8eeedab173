import type { AgentClient } from '../../api/client.js';
import { TransientError } from '../../api/errors.js';
import type { Logger } from '../../log.js';
import type { KeyStore } from '../key-store.js';
import type { Job } from '../scheduler.js';

export const SIGNING_KEYS_INTERVAL_MS = 60 * 60_000;
/** An unknown kid triggers a refresh at most this often, so a bad deployment cannot hammer the API. */
export const UNKNOWN_KID_REFRESH_MIN_MS = 60_000;

/** Refreshes the JWKS hourly with its ETag, and on demand when a deployment names an unknown kid. */
export class SigningKeysJob implements Job {
  readonly name = 'signing-keys';
  private inFlight: Promise<void> | undefined;
  private lastAttemptAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly client: AgentClient,
    private readonly store: KeyStore,
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly interval: number = SIGNING_KEYS_INTERVAL_MS,
    private readonly spreadMs: number = SIGNING_KEYS_INTERVAL_MS,
  ) {}

  intervalMs(): number {
    return this.interval;
  }

  startupSpreadMs(): number {
    // Without any keys nothing can be verified: fetch soon. With keys, no hurry.
    return this.store.hasKeys ? this.spreadMs : 1_000;
  }

  run(signal: AbortSignal): Promise<void> {
    this.inFlight ??= this.fetch(signal).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  /**
   * For the deployment pipeline: refresh now unless a refresh ran within the last minute.
   * Returns whether a refresh was attempted.
   */
  async refreshForUnknownKid(kid: string, signal: AbortSignal): Promise<boolean> {
    if (this.inFlight !== undefined) {
      await this.inFlight.catch(() => undefined);
      return true;
    }
    if (this.now() - this.lastAttemptAt < UNKNOWN_KID_REFRESH_MIN_MS) return false;
    this.logger.info({ kid }, `deployment is signed by unknown key ${kid}; refreshing signing keys`);
    await this.run(signal);
    return true;
  }

  private async fetch(signal: AbortSignal): Promise<void> {
    this.lastAttemptAt = this.now();
    const result = await this.client.getSigningKeys(this.store.etag, signal);
    if (result.kind === 'not_modified') {
      await this.store.confirm();
      return;
    }
    const update = await this.store.replace(result.jwks, result.etag);
    if (update.kind === 'rejected') {
      this.logger.warn({ reason: update.reason }, 'ignored a signing-key set with no usable key; keeping the last good set');
      throw new TransientError({ method: 'GET', path: `/api/v1/agents/${this.client.agentId}/signing-keys`, status: 200 }, 'protocol', `unusable key set: ${update.reason}`);
    }
    if (update.added.length > 0 || update.removed.length > 0) {
      this.logger.info({ added: update.added, removed: update.removed, trusted: this.store.kids() }, 'signing keys updated');
    }
    for (const entry of update.dropped) {
      // Expiry is routine rotation; anything else is worth a human's look.
      const level = entry.reason === 'expired' ? 'debug' : 'warn';
      this.logger[level]({ kid: entry.kid, reason: entry.reason }, `signing key ${entry.kid ?? '(no kid)'} ignored: ${entry.reason}`);
    }
  }
}
