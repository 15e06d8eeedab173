import type { FailureReason } from '../../api/types.js';
import { ArchiveError } from '../../archive/errors.js';

/**
 * A deployment that cannot succeed as it stands: reported `failed` with `reason`, never activated,
 * and not tried again until the target changes or a long backoff passes. Transient trouble
 * (network, 5xx, shutdown) is never a DeployFailure: it is retried by the job's backoff.
 */
export class DeployFailure extends Error {
  constructor(
    readonly reason: FailureReason,
    message: string,
    readonly details: { kid?: string } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DeployFailure';
  }
}

/** An extraction error as a deployment failure (io_error: the bundle could not be put on disk). */
export function fromArchiveError(err: ArchiveError): DeployFailure {
  const reason: FailureReason = err.reason === 'io_error' ? 'activation_failed' : err.reason;
  return new DeployFailure(reason, err.message, {}, { cause: err });
}

export const FAILED_RETRY_BASE_MS = 60 * 60_000;
export const FAILED_RETRY_CAP_MS = 24 * 60 * 60_000;

/**
 * When a failed deployment may be tried again (ms from now): an hour, doubling per consecutive
 * failure of the same deployment up to a day, ±20 % so a fleet that failed together does not
 * retry together. A changed target is tried at once regardless.
 */
export function failedRetryDelayMs(attempts: number, random: number): number {
  const base = Math.min(FAILED_RETRY_CAP_MS, FAILED_RETRY_BASE_MS * 2 ** Math.min(Math.max(attempts - 1, 0), 16));
  return Math.round(base * (0.8 + 0.4 * random));
}

/** What the sysadmin can do about each failure, for the `deployment_failed` problem. */
export function failureFix(reason: FailureReason | (string & {}), stateDir: string): string {
  switch (reason) {
    case 'disk_full':
      return `free disk space on the filesystem of ${stateDir} (a bundle needs about 3× its size); the agent retries by itself`;
    case 'digest_mismatch':
    case 'size_mismatch':
      return 'the bundle served does not match what the deployment names; republish the deployment (check any proxy or storage in between)';
    case 'signature_invalid':
      return 'the deployment is not validly signed; republish it from the control plane, and check nothing alters responses on the way';
    case 'unknown_key':
      return 'the deployment is signed by a key this agent does not trust; check the signing keys published to agents (it is retried once the key appears)';
    case 'approval_invalid':
      return "publish the deployment with a valid, unexpired approval credential for this agent's environment and the bundle's spec.kv";
    case 'unsafe_archive':
    case 'archive_too_large':
      return 'the bundle archive was refused; rebuild it from regular files and directories within the size limits and republish';
    case 'activation_failed':
    default:
      return `check permissions and health of ${stateDir}; the agent retries by itself`;
  }
}
