import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Jwk, Jwks } from '../api/types.js';

/** A signing key the agent trusts: an Ed25519 public key from the control plane's JWKS. */
export interface TrustedKey {
  kid: string;
  /** Unix seconds after which this key verifies nothing; undefined when it does not expire. */
  exp: number | undefined;
  jwk: { kty: 'OKP'; crv: 'Ed25519'; kid: string; x: string; alg?: string; use?: string; exp?: number };
}

export interface KeySetResult {
  keys: TrustedKey[];
  /** Entries left out, with why (malformed, wrong type, expired). */
  dropped: { kid: string | undefined; reason: string }[];
}

const B64URL = /^[A-Za-z0-9_-]+$/;

function keyProblem(jwk: Jwk, nowSeconds: number): string | undefined {
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519') return `not an Ed25519 OKP key (kty ${String(jwk.kty)}, crv ${String(jwk.crv)})`;
  if (typeof jwk.kid !== 'string' || jwk.kid === '') return 'has no kid';
  if (jwk.alg !== undefined && jwk.alg !== 'EdDSA') return `alg is ${String(jwk.alg)}, not EdDSA`;
  if (jwk.use !== undefined && jwk.use !== 'sig') return `use is ${String(jwk.use)}, not sig`;
  if (typeof jwk.x !== 'string' || !B64URL.test(jwk.x) || Buffer.from(jwk.x, 'base64url').length !== 32) return 'x is not a 32-byte base64url public key';
  if (jwk.exp !== undefined && (typeof jwk.exp !== 'number' || !Number.isFinite(jwk.exp))) return 'exp is not a number';
  if (typeof jwk.exp === 'number' && jwk.exp <= nowSeconds) return 'expired';
  return undefined;
}

/** Keeps only usable Ed25519 signing keys (API.md §5), dropping expired and malformed entries. */
export function validateKeySet(jwks: Jwks, nowMs: number): KeySetResult {
  const nowSeconds = Math.floor(nowMs / 1000);
  const keys: TrustedKey[] = [];
  const dropped: KeySetResult['dropped'] = [];
  const seen = new Set<string>();
  for (const jwk of jwks.keys) {
    const problem = keyProblem(jwk, nowSeconds);
    const kid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
    if (problem !== undefined) {
      dropped.push({ kid, reason: problem });
      continue;
    }
    // Two keys under one kid would make "which key verifies" ambiguous: trust neither.
    if (seen.has(jwk.kid as string)) {
      dropped.push({ kid, reason: 'duplicate kid' });
      const index = keys.findIndex((k) => k.kid === kid);
      if (index !== -1) keys.splice(index, 1);
      continue;
    }
    seen.add(jwk.kid as string);
    keys.push({
      kid: jwk.kid as string,
      exp: jwk.exp,
      jwk: { kty: 'OKP', crv: 'Ed25519', kid: jwk.kid as string, x: jwk.x as string, ...(jwk.alg ? { alg: jwk.alg } : {}), ...(jwk.use ? { use: jwk.use } : {}), ...(jwk.exp !== undefined ? { exp: jwk.exp } : {}) },
    });
  }
  return { keys, dropped };
}

/** The key for `kid` if it is trusted and unexpired at `nowMs`. */
export function findKey(keys: readonly TrustedKey[], kid: string, nowMs: number): TrustedKey | undefined {
  const key = keys.find((k) => k.kid === kid);
  if (key === undefined) return undefined;
  if (key.exp !== undefined && key.exp <= Math.floor(nowMs / 1000)) return undefined;
  return key;
}

export function publicKeyObject(key: TrustedKey): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key.jwk.x }, format: 'jwk' });
}
