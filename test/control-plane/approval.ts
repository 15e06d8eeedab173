import { base64url, canonicalJson, specHash } from './crypto.js';
import { newId } from './ids.js';
import { signWithStrangerKey, type SigningKeys } from './keys.js';
import type { Environment } from './types.js';

/**
 * Approval credentials v1 (API.md §7): `<payload_b64url>.<signature_b64url>`.
 *
 * Signing input (API.md leaves it open; this is the decision the agent must match): the payload
 * segment is base64url of the UTF-8 bytes of the payload's RFC 8785 canonical JSON, and the
 * Ed25519 signature is over exactly those bytes, i.e. over the *decoded* first segment, not
 * over its base64url text as JWS would. A verifier checks the signature against the decoded
 * bytes as received (no re-canonicalization) and only then parses them as JSON.
 */

export interface ApprovalPayload {
  v: number;
  kid: string;
  org_id: string;
  project_id: string;
  environment_id: string;
  environment_posture: string;
  spec_hash: string;
  capabilities: string[];
  issued_at: string;
  expires_at: string;
  issued_by: string;
  approval_id: string;
  [member: string]: unknown;
}

export interface ApprovalCredentialOptions {
  /** Signing key (default: the control plane's current key). Also the payload's kid unless overridden. */
  kid?: string;
  /** 'other-key' signs with a fresh key nobody publishes while still naming `kid`. */
  signWith?: 'kid' | 'other-key';
  /**
   * Changes the payload after signing, keeping the signature: true changes issued_by; an object
   * is merged into the payload. The result still decodes; only the signature is wrong.
   */
  tamper?: boolean | Record<string, unknown>;
  /** Environment whose IDs and posture fill the payload (default: the default environment). */
  environmentId?: string;
  /** spec.kv content to hash into spec_hash (else the bundle's spec.kv, else empty). */
  specKv?: string | Uint8Array;
}

const HOUR_MS = 60 * 60 * 1000;

/** Payload overrides: a member set to undefined is removed (to test missing fields). */
export type ApprovalOverrides = Partial<Record<keyof ApprovalPayload, unknown>> & Record<string, unknown>;

export function buildApprovalPayload(env: Environment, kid: string, nowMs: number, spec: Uint8Array | string, overrides: ApprovalOverrides): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    v: 1,
    kid,
    org_id: env.orgId,
    project_id: env.projectId,
    environment_id: env.environmentId,
    environment_posture: env.posture,
    spec_hash: specHash(spec),
    capabilities: ['deploy'],
    issued_at: new Date(nowMs).toISOString(),
    expires_at: new Date(nowMs + HOUR_MS).toISOString(),
    issued_by: 'release-manager@byteor.test',
    approval_id: newId('apr'),
  };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete payload[key];
    else payload[key] = value;
  }
  return payload;
}

export function encodeApprovalCredential(keys: SigningKeys, payload: Record<string, unknown>, options: { kid: string; signWith?: 'kid' | 'other-key'; tamper?: boolean | Record<string, unknown> }): string {
  const bytes = Buffer.from(canonicalJson(payload), 'utf8');
  const signature = options.signWith === 'other-key' ? signWithStrangerKey(bytes) : keys.sign(options.kid, bytes);
  let sent = bytes;
  if (options.tamper !== undefined && options.tamper !== false) {
    const changes = options.tamper === true ? { issued_by: 'mallory@evil.test' } : options.tamper;
    sent = Buffer.from(canonicalJson({ ...payload, ...changes }), 'utf8');
  }
  return `${base64url(sent)}.${signature}`;
}

/** Splits a credential for tests: the payload as sent, its exact bytes, and the signature bytes. */
export function decodeApprovalCredential(credential: string): { payload: unknown; payloadBytes: Buffer; signature: Buffer } {
  const [payloadPart = '', signaturePart = ''] = credential.split('.');
  const payloadBytes = Buffer.from(payloadPart, 'base64url');
  return { payload: JSON.parse(payloadBytes.toString('utf8')) as unknown, payloadBytes, signature: Buffer.from(signaturePart, 'base64url') };
}
