import type { Deployment } from '../api/types.js';
import { verifyEd25519 } from './ed25519.js';
import { canonicalBytes, CanonicalizationError } from './jcs.js';
import { findKey, type TrustedKey } from './keyset.js';

export type SignatureCheck =
  | { ok: true; kid: string }
  /** The key set has no usable key `kid`: worth one key refresh before giving up (API.md §5). */
  | { ok: false; reason: 'unknown_key'; kid: string; message: string }
  | { ok: false; reason: 'signature_invalid'; kid: string; message: string };

/** What the deployment signature covers: the RFC 8785 canonical JSON of every member but `signature`. */
export function deploymentSigningInput(deployment: Deployment): Buffer {
  const { signature: _signature, ...signed } = deployment;
  return canonicalBytes(signed);
}

/**
 * Verifies a deployment's Ed25519 signature (API.md §3) against the trusted keys at `nowMs`.
 * Pure: the caller decides whether an unknown kid is worth a key refresh.
 */
export function verifyDeploymentSignature(deployment: Deployment, keys: readonly TrustedKey[], nowMs: number): SignatureCheck {
  const { kid, alg, value } = deployment.signature;
  if (alg !== 'EdDSA') return { ok: false, reason: 'signature_invalid', kid, message: `signature algorithm ${JSON.stringify(alg)} is not EdDSA` };
  const key = findKey(keys, kid, nowMs);
  if (key === undefined) return { ok: false, reason: 'unknown_key', kid, message: `signed by key ${kid}, which is not in the trusted key set` };
  let input: Buffer;
  try {
    input = deploymentSigningInput(deployment);
  } catch (err) {
    if (err instanceof CanonicalizationError) return { ok: false, reason: 'signature_invalid', kid, message: `the deployment cannot be canonicalized: ${err.message}` };
    throw err;
  }
  if (!verifyEd25519(key, input, value)) return { ok: false, reason: 'signature_invalid', kid, message: `the signature does not verify with key ${kid}` };
  return { ok: true, kid };
}
