import { randomBytes } from 'node:crypto';

/**
 * Identifiers and secrets. Random (not sequential) on purpose: a client that caches or compares
 * IDs wrongly fails in tests instead of passing by coincidence of a counter.
 */

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function randomString(alphabet: string, length: number): string {
  // Rejection-free is fine here: a slight modulo bias does not matter for test IDs.
  const bytes = randomBytes(length);
  let out = '';
  for (const byte of bytes) out += alphabet[byte % alphabet.length];
  return out;
}

/** ULID-looking IDs like the ones in API.md: `agt_01JD8Y6Q4T6W2R`. */
export function newId(prefix: string, length = 16): string {
  return `${prefix}_${randomString(CROCKFORD, length)}`;
}

/** Runtime API keys: `byk_live_<random>`, the shape the agent's log scrubber knows. */
export function newApiKey(): string {
  return `byk_live_${randomString(BASE62, 40)}`;
}

export function newEnrollmentToken(): string {
  return `byt_enroll_${randomString(BASE62, 40)}`;
}

export function newRequestId(): string {
  return newId('req', 20);
}
