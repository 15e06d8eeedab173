import { verify } from 'node:crypto';
import { publicKeyObject, type TrustedKey } from './keyset.js';

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Strict base64url (no padding, no other alphabet), or undefined: lenient decoders accept garbage. */
export function decodeBase64url(text: string): Buffer | undefined {
  if (!B64URL.test(text) || text.length % 4 === 1) return undefined;
  return Buffer.from(text, 'base64url');
}

/** Whether `signature` (base64url, 64 bytes) is key's Ed25519 signature over exactly `data`. */
export function verifyEd25519(key: TrustedKey, data: Uint8Array, signature: string): boolean {
  const bytes = decodeBase64url(signature);
  if (bytes?.length !== 64) return false;
  try {
    return verify(null, data, publicKeyObject(key), bytes);
  } catch {
    // A key that cannot be imported verifies nothing.
    return false;
  }
}
