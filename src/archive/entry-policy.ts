import type { ArchiveLimits } from './limits.js';

/**
 * Whether a tar entry may be extracted: a pure decision, unit-tested without I/O. The extractor
 * asks it for every entry (after pax/long-name headers are applied) before a byte is written.
 */

export type ArchiveRefusalReason = 'unsafe_archive' | 'archive_too_large';

/** What the decision needs from a tar header. */
export interface EntryFacts {
  path: string;
  /** node-tar's type name: File, OldFile, Directory, SymbolicLink, Link, CharacterDevice, … */
  type: string;
  size: number;
  mode: number | undefined;
}

export type EntryDecision =
  /** Extract `path` (normalized, relative) with `mode` (special bits and group/other write dropped). */
  | { kind: 'extract'; path: string; entryType: 'file' | 'directory'; size: number; mode: number }
  /** The archive's root directory entry (`./`): nothing to create, and its mode is not ours to take. */
  | { kind: 'skip' }
  | { kind: 'refuse'; reason: ArchiveRefusalReason; message: string };

/** What earlier entries established; updated with admit() after each accepted entry. */
export interface EntryTally {
  entries: number;
  bytes: number;
  /** Paths given by an entry of their own. */
  explicit: Set<string>;
  /** Paths that are (or will be) directories: explicit ones and every parent of an entry. */
  directories: Set<string>;
  files: Set<string>;
}

export function newTally(): EntryTally {
  return { entries: 0, bytes: 0, explicit: new Set(), directories: new Set(), files: new Set() };
}

const FILE_TYPES = new Set(['File', 'OldFile']);
const REFUSED_TYPES: Record<string, string> = {
  SymbolicLink: 'a symbolic link',
  Link: 'a hard link',
  CharacterDevice: 'a character device',
  BlockDevice: 'a block device',
  FIFO: 'a FIFO',
};
// Control characters and backslashes have no business in a config bundle and confuse tools that
// print or re-interpret paths.
const BAD_CHARS = /[\x00-\x1f\x7f\\]/;

const refuse = (reason: ArchiveRefusalReason, message: string): EntryDecision => ({ kind: 'refuse', reason, message });

/** `./a/b/` → `a/b`; undefined for the root itself. Refuses absolute, `..`, `.` and empty segments. */
export function normalizeEntryPath(raw: string): { path: string } | { root: true } | { problem: string } {
  if (raw.startsWith('/')) return { problem: 'is absolute' };
  if (BAD_CHARS.test(raw)) return { problem: 'holds a control character or a backslash' };
  const segments = raw.split('/');
  while (segments.length > 0 && segments[segments.length - 1] === '') segments.pop();
  while (segments.length > 0 && segments[0] === '.') segments.shift();
  if (segments.length === 0) return raw === '' ? { problem: 'is empty' } : { root: true };
  for (const segment of segments) {
    if (segment === '..') return { problem: "climbs out with '..'" };
    if (segment === '.' || segment === '') return { problem: "has an empty or '.' segment" };
  }
  return { path: segments.join('/') };
}

/** Drops setuid/setgid/sticky and group/other write; keeps the owner able to read (and list, for directories). */
export function sanitizeMode(mode: number | undefined, entryType: 'file' | 'directory'): number {
  if (entryType === 'directory') return ((mode ?? 0o755) & 0o755) | 0o700;
  return ((mode ?? 0o644) & 0o755) | 0o600;
}

export function decideEntry(facts: EntryFacts, tally: EntryTally, limits: ArchiveLimits): EntryDecision {
  const shown = JSON.stringify(facts.path.slice(0, 200));
  const refusedType = REFUSED_TYPES[facts.type];
  if (refusedType !== undefined) return refuse('unsafe_archive', `entry ${shown} is ${refusedType}; bundles hold only regular files and directories`);
  const isFile = FILE_TYPES.has(facts.type);
  if (!isFile && facts.type !== 'Directory') return refuse('unsafe_archive', `entry ${shown} has unsupported type ${facts.type}`);

  const normalized = normalizeEntryPath(facts.path);
  if ('problem' in normalized) return refuse('unsafe_archive', `entry path ${shown} ${normalized.problem}`);
  if ('root' in normalized) return isFile ? refuse('unsafe_archive', `entry ${shown} would replace the bundle root with a file`) : { kind: 'skip' };
  const path = normalized.path;

  if (!Number.isSafeInteger(facts.size) || facts.size < 0) return refuse('unsafe_archive', `entry ${shown} has an invalid size`);
  if (!isFile && facts.size > 0) return refuse('unsafe_archive', `directory entry ${shown} carries data`);

  if (tally.entries + 1 > limits.maxEntries) return refuse('archive_too_large', `more than ${limits.maxEntries} entries`);
  if (tally.bytes + facts.size > limits.maxTotalBytes) return refuse('archive_too_large', `files add up to more than ${limits.maxTotalBytes} bytes (at ${shown})`);
  const segments = path.split('/');
  if (segments.length > limits.maxDepth) return refuse('archive_too_large', `entry ${shown} is nested ${segments.length} levels deep (limit ${limits.maxDepth})`);
  if (Buffer.byteLength(path) > limits.maxPathBytes) return refuse('archive_too_large', `entry path is longer than ${limits.maxPathBytes} bytes`);
  if (segments.some((s) => Buffer.byteLength(s) > limits.maxNameBytes)) return refuse('archive_too_large', `entry ${shown} has a name longer than ${limits.maxNameBytes} bytes`);

  // A second entry for a path would silently replace the first (or turn a directory into a file):
  // what ends up on disk would depend on order, so the archive is refused.
  if (tally.explicit.has(path)) return refuse('unsafe_archive', `duplicate entry ${JSON.stringify(path)}`);
  if (isFile && tally.directories.has(path)) return refuse('unsafe_archive', `file ${JSON.stringify(path)} collides with a directory of the same name`);
  for (let i = 1; i < segments.length; i += 1) {
    const parent = segments.slice(0, i).join('/');
    if (tally.files.has(parent)) return refuse('unsafe_archive', `entry ${JSON.stringify(path)} lies below the file ${JSON.stringify(parent)}`);
  }
  const entryType = isFile ? 'file' : 'directory';
  return { kind: 'extract', path, entryType, size: facts.size, mode: sanitizeMode(facts.mode, entryType) };
}

/** Records an accepted entry in the tally. */
export function admit(tally: EntryTally, decision: Extract<EntryDecision, { kind: 'extract' }>): void {
  tally.entries += 1;
  tally.bytes += decision.size;
  tally.explicit.add(decision.path);
  const segments = decision.path.split('/');
  for (let i = 1; i < segments.length; i += 1) tally.directories.add(segments.slice(0, i).join('/'));
  if (decision.entryType === 'file') tally.files.add(decision.path);
  else tally.directories.add(decision.path);
}
