import canonicalize from 'canonicalize';

export class CanonicalizationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CanonicalizationError';
  }
}

/**
 * RFC 8785 (JCS) canonical JSON: the signing input of deployments (API.md §3) and approval
 * credentials (§7). A well-kept library rather than a hand-rolled serializer, because two
 * canonicalizations that differ in one number format make every signature fail.
 * Throws CanonicalizationError for values JSON cannot carry (NaN, Infinity, lone surrogates, cycles).
 */
export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (err) {
    throw new CanonicalizationError(`cannot canonicalize: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (text === undefined) throw new CanonicalizationError('cannot canonicalize undefined');
  return text;
}

/** The canonical form as the UTF-8 bytes that are signed. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}
