import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Deployment, Posture } from '../../api/types.js';
import type { ArchiveLimits } from '../../archive/limits.js';
import { checkSpecHash, specHashOf, verifyApprovalCredential, type ApprovalPayload } from '../../crypto/approval.js';
import type { TrustedKey } from '../../crypto/keyset.js';
import { verifyDeploymentSignature } from '../../crypto/verify-deployment.js';
import { DeployFailure } from './failure.js';

export const BUNDLE_FORMAT = 'tar+gzip';
export const SPEC_FILE = 'spec.kv';

export interface VerifyDeps {
  keys: () => readonly TrustedKey[];
  /** One rate-limited key refresh for an unknown kid (SigningKeysJob.refreshForUnknownKid). */
  refreshKeys: (kid: string, signal: AbortSignal) => Promise<boolean>;
  identity: { environmentId: string | undefined; posture: Posture | undefined };
  now: () => number;
  limits: ArchiveLimits;
}

export interface Verified {
  /** The verified approval credential; its spec hash is checked against the extracted bundle. */
  approval: ApprovalPayload | undefined;
}

/**
 * staging and prod need an approval credential (API.md §7). So does an unknown posture (an env
 * file written by hand without BYTEOR_ENVIRONMENT_POSTURE): failing closed, since a prod host
 * that lost its posture must not start taking unapproved deployments.
 */
export function approvalRequired(posture: Posture | undefined): boolean {
  return posture !== 'dev';
}

/**
 * Everything that can be checked before a byte is downloaded: the signature (one key refresh for
 * an unknown kid, then unknown_key), format, declared size, and the approval credential where
 * the posture requires one or one is present. Throws DeployFailure; a failed key refresh
 * (network) propagates as the retryable error it is.
 */
export async function verifyDeployment(deployment: Deployment, deps: VerifyDeps, signal: AbortSignal): Promise<Verified> {
  let signature = verifyDeploymentSignature(deployment, deps.keys(), deps.now());
  if (!signature.ok && signature.reason === 'unknown_key') {
    await deps.refreshKeys(signature.kid, signal);
    signature = verifyDeploymentSignature(deployment, deps.keys(), deps.now());
  }
  if (!signature.ok) throw new DeployFailure(signature.reason, signature.message, { kid: signature.kid });

  const { bundle } = deployment;
  if (bundle.format !== BUNDLE_FORMAT) throw new DeployFailure('unsafe_archive', `bundle format ${JSON.stringify(bundle.format)} is not ${BUNDLE_FORMAT}`);
  // A gzip'd tar is never smaller than ~1/1000 of its content, but never much larger either: a
  // bundle bigger than what it may unpack to cannot be valid, so it is not downloaded at all.
  const maxCompressed = deps.limits.maxTotalBytes + deps.limits.maxUnaccountedBytes;
  if (bundle.size_bytes > maxCompressed) throw new DeployFailure('archive_too_large', `the bundle is ${bundle.size_bytes} bytes, more than the ${maxCompressed} a bundle may hold`);

  const { posture } = deps.identity;
  const credential = deployment.approval_credential;
  if (credential === null || credential === undefined) {
    if (approvalRequired(posture)) {
      const why =
        posture === undefined
          ? "this agent does not know its environment's posture (BYTEOR_ENVIRONMENT_POSTURE is not set; re-enrolling writes it), so it requires an approval credential"
          : `a deployment to a ${posture} environment must carry an approval credential`;
      throw new DeployFailure('approval_invalid', `${why}, and this one carries none`);
    }
    return { approval: undefined };
  }
  const expect = { environmentId: deps.identity.environmentId ?? deployment.environment_id, posture, nowMs: deps.now() };
  let approval = verifyApprovalCredential(credential, deps.keys(), expect);
  if (!approval.ok && approval.rule === 'unknown_key' && approval.kid !== undefined) {
    await deps.refreshKeys(approval.kid, signal);
    approval = verifyApprovalCredential(credential, deps.keys(), { ...expect, nowMs: deps.now() });
  }
  if (!approval.ok) throw new DeployFailure('approval_invalid', `approval credential refused (${approval.rule}): ${approval.message}`);
  return { approval: approval.approval };
}

/** specHashOf() of `dir`/spec.kv, streamed (a bundle without one hashes as empty). */
export async function bundleSpecHash(dir: string): Promise<string> {
  const path = join(dir, SPEC_FILE);
  try {
    if (!(await lstat(path)).isFile()) throw new DeployFailure('unsafe_archive', `${SPEC_FILE} is not a regular file`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return specHashOf(undefined);
    throw err;
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** The bundle in `dir` must hold the spec the approval names (API.md §7). */
export async function checkBundleSpec(dir: string, approval: ApprovalPayload | undefined): Promise<void> {
  if (approval === undefined) return;
  const result = checkSpecHash(approval, await bundleSpecHash(dir));
  if (!result.ok) throw new DeployFailure('approval_invalid', `approval credential refused (${result.rule}): ${result.message}`);
}
