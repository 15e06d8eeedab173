import type { Deployment, DeploymentSignature } from '../../src/api/types.js';
import { canonicalJson, hmacHex } from './crypto.js';
import type { SigningKeys } from './keys.js';

/**
 * Deployment objects (API.md §3). Each is signed once, at publication, with Ed25519 over the
 * RFC 8785 canonical JSON of the object without `signature`. Ed25519 is deterministic, so the
 * same content always gives the same signature and the same ETag.
 */

export interface PublishDeploymentOptions {
  /** Target one agent (its agent-specific deployment wins over its environment's, if newer). */
  agentId?: string;
  /** Target every agent of an environment (default: the default environment). */
  environmentId?: string;
  /** The .tar.gz bytes served at bundle.url. */
  bundle: Uint8Array;
  /** Signing key; an unknown kid creates an unpublished key of that name (an "unknown key" case). */
  kid?: string;
  /**
   * null: none. A string: sent as is. Undefined: none for a dev environment, and for staging/prod
   * a valid credential issued for the bundle's spec.kv (a real control plane only publishes
   * approved deployments there).
   */
  approvalCredential?: string | null;
  /**
   * 'relative' (default): served by the API with auth. 'cross-origin': a pre-signed URL on the
   * storage origin, served without auth. Any other string is used verbatim.
   */
  bundleUrl?: 'relative' | 'cross-origin' | (string & {});
  /** Claim another size / sha256 than the bytes have (size_mismatch / digest_mismatch tests). */
  sizeOverride?: number;
  sha256Override?: string;
  /** Replaces members of the computed signature (e.g. a garbage value, another alg). */
  signatureOverride?: Partial<DeploymentSignature>;
  /** Extra top-level members, covered by the signature (clients must keep unknown members). */
  extra?: Record<string, unknown>;
  /** Mutates the signed object (the signature no longer matches what is served). */
  afterSigning?: (deployment: Deployment) => void;
  deploymentId?: string;
  versionId?: string;
}

export const STORAGE_PATH_PREFIX = '/_storage/bundles/';

/** What the deployment signature covers: canonical JSON of everything but `signature`. */
export function deploymentSigningInput(deployment: Record<string, unknown>): string {
  const { signature: _ignored, ...rest } = deployment;
  return canonicalJson(rest);
}

export function signDeployment(keys: SigningKeys, unsigned: Omit<Deployment, 'signature'>, kid: string): Deployment {
  const value = keys.sign(kid, deploymentSigningInput(unsigned));
  return { ...unsigned, signature: { kid, alg: 'EdDSA', value } } as Deployment;
}

export function storagePath(deploymentId: string): string {
  return `${STORAGE_PATH_PREFIX}${encodeURIComponent(deploymentId)}/bundle.tar.gz`;
}

/** The X-Sig of a pre-signed storage URL: an HMAC of its path, like real storage services do. */
export function storageSignature(secret: Buffer, path: string): string {
  return hmacHex(secret, path);
}

export function relativeBundlePath(target: { agentId: string } | { environmentId: string }, deploymentId: string): string {
  const dep = encodeURIComponent(deploymentId);
  // An environment-wide deployment is one signed object for all its agents, so its bundle URL
  // cannot name an agent: it lives under the environment instead (any key of that environment).
  if ('agentId' in target) return `/api/v1/agents/${encodeURIComponent(target.agentId)}/deployments/${dep}/bundle`;
  return `/api/v1/environments/${encodeURIComponent(target.environmentId)}/deployments/${dep}/bundle`;
}
