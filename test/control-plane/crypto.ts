import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import canonicalize from 'canonicalize';

/** RFC 8785 (JCS) canonical JSON, the signing input of deployments (API.md §3) and approvals (§7). */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new Error('value cannot be canonicalized (undefined or a function)');
  return text;
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function base64url(data: Uint8Array | string): string {
  return Buffer.from(data).toString('base64url');
}

export function hmacHex(secret: Buffer, data: string): string {
  return createHmac('sha256', secret).update(data).digest('hex');
}

export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** `sha256:<hex>`, the form of approval credentials' spec_hash (API.md §7). */
export function specHash(specKv: Uint8Array | string): string {
  return `sha256:${sha256Hex(specKv)}`;
}

/** A strong, quoted ETag derived from a JSON value's canonical form (stable across key order). */
export function contentEtag(prefix: string, value: unknown): string {
  return `"${prefix}-${sha256Hex(canonicalJson(value)).slice(0, 32)}"`;
}

/**
 * If-None-Match evaluation (RFC 9110 §13.1.2): weak comparison, a list of tags, or `*`.
 * True when the client's copy is current and a 304 is due.
 */
export function etagMatches(ifNoneMatch: string | null, etag: string): boolean {
  if (ifNoneMatch === null) return false;
  const header = ifNoneMatch.trim();
  if (header === '*') return true;
  const strip = (tag: string): string => tag.trim().replace(/^W\//, '');
  return header.split(',').some((tag) => strip(tag) === strip(etag));
}
