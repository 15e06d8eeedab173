import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { Jwk, Jwks } from '../../src/api/types.js';
import { base64url, contentEtag } from './crypto.js';
import { newId } from './ids.js';

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  /** The JWK `x` member: the raw 32-byte public key, base64url. */
  x: string;
  exp: number | undefined;
  /** In the served JWKS. An unpublished key still signs (e.g. for "unknown kid" tests). */
  published: boolean;
  /** Order of (re)publication, so the newest published key is the default signer. */
  seq: number;
}

export interface AddSigningKeyOptions {
  kid?: string;
  /** Unix seconds after which the key verifies nothing (the JWK `exp` member). */
  exp?: number;
  /** Default true. False creates a key the agent does not know yet. */
  published?: boolean;
}

function generate(): { privateKey: KeyObject; x: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new Error('ed25519 public JWK without x');
  return { privateKey, x: jwk.x };
}

/**
 * The control plane's Ed25519 signing keys (API.md §5). Removing a key only unpublishes it:
 * its private half is kept so deployments already signed with it stay as they were, which is
 * exactly the "signed by a key the agent no longer trusts" case.
 */
export class SigningKeys {
  private readonly keys = new Map<string, SigningKey>();
  private seq = 0;

  add(options: AddSigningKeyOptions = {}): string {
    const kid = options.kid ?? newId('key', 10).toLowerCase();
    const existing = this.keys.get(kid);
    this.seq += 1;
    if (existing !== undefined) {
      // Re-adding a known kid republishes the same key pair (rotation back), not a new one.
      existing.published = options.published ?? true;
      if (options.exp !== undefined) existing.exp = options.exp;
      existing.seq = this.seq;
      return kid;
    }
    const { privateKey, x } = generate();
    this.keys.set(kid, { kid, privateKey, x, exp: options.exp, published: options.published ?? true, seq: this.seq });
    return kid;
  }

  /** Takes the key out of the served set; false when no such key was published. */
  remove(kid: string): boolean {
    const key = this.keys.get(kid);
    if (key === undefined || !key.published) return false;
    key.published = false;
    return true;
  }

  has(kid: string): boolean {
    return this.keys.has(kid);
  }

  isPublished(kid: string): boolean {
    return this.keys.get(kid)?.published === true;
  }

  /** The newest published key: what deployments and approvals are signed with by default. */
  defaultKid(): string {
    let best: SigningKey | undefined;
    for (const key of this.keys.values()) {
      if (key.published && (best === undefined || key.seq > best.seq)) best = key;
    }
    if (best === undefined) throw new Error('no published signing key: addSigningKey() first, or pass kid');
    return best.kid;
  }

  /** Ed25519 signature (base64url) over `data` with key `kid`. */
  sign(kid: string, data: Uint8Array | string): string {
    const key = this.keys.get(kid);
    if (key === undefined) throw new Error(`unknown signing key ${kid}`);
    return base64url(sign(null, Buffer.from(data), key.privateKey));
  }

  publicJwk(kid: string): Jwk {
    const key = this.keys.get(kid);
    if (key === undefined) throw new Error(`unknown signing key ${kid}`);
    const jwk: Jwk = { kty: 'OKP', crv: 'Ed25519', kid: key.kid, alg: 'EdDSA', use: 'sig', x: key.x };
    if (key.exp !== undefined) jwk.exp = key.exp;
    return jwk;
  }

  /** The served key set, in publication order (oldest first). */
  jwks(): Jwks {
    const published = [...this.keys.values()].filter((key) => key.published).sort((a, b) => a.seq - b.seq);
    return { keys: published.map((key) => this.publicJwk(key.kid)) };
  }

  etag(): string {
    return contentEtag('k', this.jwks());
  }
}

/** A throwaway signature by a key nobody publishes: valid Ed25519, wrong key. */
export function signWithStrangerKey(data: Uint8Array | string): string {
  return base64url(sign(null, Buffer.from(data), generate().privateKey));
}
