import { PermanentError } from '../../api/errors.js';
import { PackError } from '../../archive/pack.js';
import { ARTIFACT_TYPES, MAX_ARTIFACT_BYTES } from '../../api/types.js';
import { formatBytes } from '../../util/format.js';
import { isArtifactType, type OutboxEntry } from './entries.js';

/**
 * The outbox's decisions as pure functions: what to do with an entry before sending it, and what
 * an upload failure means for it. Unit-tested without I/O.
 */

/** Why an entry was moved to .rejected/ (reason.json `code`). */
export type RejectCode = 'unknown_type' | 'unsupported_entry' | 'too_large' | 'hash_mismatch' | 'refused';

export interface Rejection {
  code: RejectCode;
  /** One sentence for a human reading `status`. */
  reason: string;
  /** The server's answer, when it was the server that refused. */
  status?: number | undefined;
  serverCode?: string | undefined;
  requestId?: string | undefined;
}

const over = (bytes: number, limit: number, what: string): string =>
  `${what} is ${formatBytes(bytes)} (${bytes} bytes), over the ${formatBytes(limit)} artifact limit; not sent`;

/** Checks that need no reading of the content; undefined when the entry may go on. */
export function checkEntry(entry: Pick<OutboxEntry, 'type' | 'kind' | 'size'>, maxBytes: number = MAX_ARTIFACT_BYTES): Rejection | undefined {
  if (!isArtifactType(entry.type)) {
    const where = entry.type === '' ? 'placed directly in outbox/ instead of a type directory' : `in outbox/${entry.type}/, which is not an artifact type`;
    return { code: 'unknown_type', reason: `${where}; the types are ${ARTIFACT_TYPES.join(', ')}; not sent` };
  }
  if (entry.kind === 'other') {
    return { code: 'unsupported_entry', reason: 'not a regular file or directory (symbolic links are not followed); rename the file itself into the outbox; not sent' };
  }
  if (entry.kind === 'file' && entry.size > maxBytes) return { code: 'too_large', reason: over(entry.size, maxBytes, 'the file') };
  return undefined;
}

/** The same check on the bytes that would be sent (a packed directory's archive, a file after hashing). */
export function checkSize(size: number, packed: boolean, maxBytes: number = MAX_ARTIFACT_BYTES): Rejection | undefined {
  return size > maxBytes ? { code: 'too_large', reason: over(size, maxBytes, packed ? 'the packed directory' : 'the file') } : undefined;
}

export type FailureAction =
  /** The artifact itself is refused for good: move it to .rejected/. */
  | { kind: 'reject'; rejection: Rejection }
  /** The server saw other bytes than we hashed: hash (and pack) again and send once more. */
  | { kind: 'rehash' }
  /** Keep the entry and stop the outbox; the scheduler backs off (429 Retry-After, 401, 403, transient). */
  | { kind: 'hold'; refused: boolean };

const HASH_CODES = new Set(['hash_mismatch', 'size_mismatch']);

/**
 * What an upload failure means. 413 and 400 (unknown type, bad metadata, a hash mismatch that
 * persists after one re-hash) are about this artifact: rejected. Other 4xx (404, 405, 415, ...)
 * say the request or the deployment is wrong, not the artifact: it is kept and the outbox pauses
 * (`refused`, raised as a problem) rather than emptying itself into .rejected/.
 */
export function onUploadFailure(err: unknown, alreadyRehashed: boolean): FailureAction {
  if (!(err instanceof PermanentError)) return { kind: 'hold', refused: false };
  const status = err.status;
  const facts = { status, serverCode: err.code, requestId: err.requestId };
  const said = err.serverMessage === undefined ? '' : `: ${err.serverMessage}`;
  if (status === 400 && err.code !== undefined && HASH_CODES.has(err.code)) {
    if (!alreadyRehashed) return { kind: 'rehash' };
    return { kind: 'reject', rejection: { code: 'hash_mismatch', reason: `the control plane still saw different bytes after a re-hash (400 ${err.code}${said})`, ...facts } };
  }
  if (status === 413) return { kind: 'reject', rejection: { code: 'too_large', reason: `the control plane refused it as too large (413${said})`, ...facts } };
  if (status === 400 || status === 422) {
    const code: RejectCode = err.code === 'unknown_type' ? 'unknown_type' : 'refused';
    return { kind: 'reject', rejection: { code, reason: `the control plane refused it (${status}${err.code === undefined ? '' : ` ${err.code}`}${said})`, ...facts } };
  }
  return { kind: 'hold', refused: true };
}

/** A packing failure that makes the directory unfit as an artifact, or undefined for a local problem. */
export function packRejection(err: unknown, maxBytes: number = MAX_ARTIFACT_BYTES): Rejection | undefined {
  if (!(err instanceof PackError) || err.code === 'changed') return undefined;
  if (err.code === 'too_large') return { code: 'too_large', reason: `the packed directory is larger than the ${formatBytes(maxBytes)} artifact limit; not sent` };
  return { code: 'unsupported_entry', reason: `the directory cannot be packed: ${err.message}; not sent` };
}

/** Local failures (packing, hashing) that keep an entry for later rather than refusing it. */
export type LocalProblem = 'disk_full' | 'unreadable' | 'changing' | 'io_error';

export function localProblemOf(err: unknown): LocalProblem {
  if (err instanceof PackError && err.code === 'changed') return 'changing';
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'disk_full';
  if (code === 'EACCES' || code === 'EPERM') return 'unreadable';
  return 'io_error';
}

/** How long a locally failing entry waits before the next try: 10 s doubling to 5 min. */
export function deferDelayMs(failures: number): number {
  return Math.min(5 * 60_000, 10_000 * 2 ** Math.min(Math.max(failures - 1, 0), 10));
}
