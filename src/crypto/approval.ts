import { createHash } from 'node:crypto';
import type { Posture } from '../api/types.js';
import { decodeBase64url, verifyEd25519 } from './ed25519.js';
import { findKey, type TrustedKey } from './keyset.js';

/**
 * Approval credentials v1 (API.md §7): `<payload_base64url>.<signature_base64url>`.
 *
 * The Ed25519 signature covers exactly the bytes of the decoded payload segment (the UTF-8 of its
 * canonical JSON), as received: nothing is re-canonicalized. The payload is parsed before the
 * signature is checked only to learn `kid`; no other field is trusted until it verifies.
 */

export const APPROVAL_VERSION = 1;
export const DEPLOY_CAPABILITY = 'deploy';

/** Why a credential is refused; every one is reported as `approval_invalid`. */
export type ApprovalRejection =
  | 'malformed'
  | 'unknown_key'
  | 'bad_signature'
  | 'unsupported_version'
  | 'environment_mismatch'
  | 'expired'
  | 'missing_capability'
  | 'spec_mismatch';

export interface ApprovalPayload {
  v: number;
  kid: string;
  org_id: string;
  project_id: string;
  environment_id: string;
  environment_posture: Posture;
  spec_hash: string;
  capabilities: string[];
  issued_at: string;
  expires_at: string;
  issued_by: string;
  approval_id: string;
}

export type ApprovalCheck = { ok: true; approval: ApprovalPayload } | { ok: false; rule: ApprovalRejection; message: string; kid?: string };

/** What the credential must match: the agent's own environment. */
export interface ApprovalExpectations {
  environmentId: string;
  /** The agent's posture when known; a credential for another posture is refused. */
  posture?: Posture | undefined;
  nowMs: number;
}

const SPEC_HASH = /^sha256:[0-9a-f]{64}$/;
const POSTURES: readonly string[] = ['dev', 'staging', 'prod'];

const reject = (rule: ApprovalRejection, message: string, kid?: string): ApprovalCheck => ({ ok: false, rule, message, ...(kid === undefined ? {} : { kid }) });

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string' && v !== '';

/** Field shapes of a v1 payload; the problem, or undefined. */
function payloadProblem(p: Record<string, unknown>): string | undefined {
  for (const field of ['org_id', 'project_id', 'environment_id', 'issued_by', 'approval_id', 'issued_at', 'expires_at'] as const) {
    if (!isStr(p[field])) return `${field} is missing or not a string`;
  }
  if (typeof p.environment_posture !== 'string' || !POSTURES.includes(p.environment_posture)) return 'environment_posture is not dev, staging or prod';
  if (typeof p.spec_hash !== 'string' || !SPEC_HASH.test(p.spec_hash)) return 'spec_hash is not sha256:<64 lowercase hex>';
  if (!Array.isArray(p.capabilities) || !p.capabilities.every((c) => typeof c === 'string')) return 'capabilities is not a list of strings';
  if (Number.isNaN(Date.parse(p.expires_at as string))) return 'expires_at is not a timestamp';
  return undefined;
}

/**
 * Every rule of API.md §7 that does not need the bundle: decoding, signature by the trusted key
 * `kid`, version, environment, expiry, the `deploy` capability. The spec hash is checked against
 * the extracted bundle with checkSpecHash().
 */
export function verifyApprovalCredential(credential: string, keys: readonly TrustedKey[], expect: ApprovalExpectations): ApprovalCheck {
  const parts = credential.split('.');
  if (parts.length !== 2) return reject('malformed', 'not <payload>.<signature>');
  const [payloadPart = '', signaturePart = ''] = parts;
  const payloadBytes = decodeBase64url(payloadPart);
  if (payloadBytes === undefined || payloadBytes.length === 0) return reject('malformed', 'the payload is not base64url');
  if (decodeBase64url(signaturePart) === undefined) return reject('malformed', 'the signature is not base64url');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payloadBytes));
  } catch {
    return reject('malformed', 'the payload is not UTF-8 JSON');
  }
  if (!isObj(parsed)) return reject('malformed', 'the payload is not a JSON object');
  const kid = parsed.kid;
  if (!isStr(kid)) return reject('malformed', 'the payload names no kid');

  const key = findKey(keys, kid, expect.nowMs);
  if (key === undefined) return reject('unknown_key', `signed by key ${kid}, which is not in the trusted key set`, kid);
  if (!verifyEd25519(key, payloadBytes, signaturePart)) return reject('bad_signature', `the signature does not verify with key ${kid}`, kid);

  // Verified: from here on the payload is the control plane's word.
  if (parsed.v !== APPROVAL_VERSION) return reject('unsupported_version', `version ${JSON.stringify(parsed.v)} is not supported (only ${APPROVAL_VERSION})`, kid);
  const problem = payloadProblem(parsed);
  if (problem !== undefined) return reject('malformed', problem, kid);
  const approval = parsed as unknown as ApprovalPayload;
  if (approval.environment_id !== expect.environmentId) {
    return reject('environment_mismatch', `issued for environment ${approval.environment_id}, not this agent's ${expect.environmentId}`, kid);
  }
  if (expect.posture !== undefined && approval.environment_posture !== expect.posture) {
    return reject('environment_mismatch', `issued for a ${approval.environment_posture} environment, this agent's is ${expect.posture}`, kid);
  }
  if (Date.parse(approval.expires_at) <= expect.nowMs) return reject('expired', `expired at ${approval.expires_at}`, kid);
  if (!approval.capabilities.includes(DEPLOY_CAPABILITY)) return reject('missing_capability', `its capabilities (${approval.capabilities.join(', ') || 'none'}) lack ${DEPLOY_CAPABILITY}`, kid);
  return { ok: true, approval };
}

/** `sha256:<hex>` of a bundle's spec.kv; a bundle without one is hashed as empty content. */
export function specHashOf(specKv: Uint8Array | undefined): string {
  return `sha256:${createHash('sha256').update(specKv ?? new Uint8Array(0)).digest('hex')}`;
}

/**
 * The last rule of §7: the credential approves exactly this bundle's spec. `actual` is
 * specHashOf() of the bundle's spec.kv (computed by the caller, who may stream a large file).
 */
export function checkSpecHash(approval: ApprovalPayload, actual: string): ApprovalCheck {
  if (approval.spec_hash !== actual) return reject('spec_mismatch', `approves spec ${approval.spec_hash}, the bundle's spec.kv is ${actual}`, approval.kid);
  return { ok: true, approval };
}
