import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACT_TYPES, type ArtifactType } from '../../api/types.js';
import type { StateLayout } from '../../state/layout.js';

/** What sits in the outbox, as one scan saw it. */
export interface OutboxEntry {
  /** The directory it was found in: an artifact type, or anything else (then it is refused). */
  type: string;
  name: string;
  path: string;
  kind: 'file' | 'dir' | 'other';
  /** Bytes of a file (0 for anything else). */
  size: number;
  mtimeMs: number;
  /** Identity of what was renamed in, so a replaced entry is never confused with the old one. */
  ino: number;
  ctimeMs: number;
}

export const isArtifactType = (type: string): type is ArtifactType => (ARTIFACT_TYPES as readonly string[]).includes(type);

/** Dot-names are writes in progress (temp names before the rename) and the agent's own areas. */
export const isVisibleName = (name: string): boolean => !name.startsWith('.');

export const entryKey = (entry: Pick<OutboxEntry, 'type' | 'name'>): string => `${entry.type}/${entry.name}`;

/** Oldest first by mtime, then by name, then type: a total order, so runs are reproducible. */
export function compareEntries(a: OutboxEntry, b: OutboxEntry): number {
  if (a.mtimeMs !== b.mtimeMs) return a.mtimeMs - b.mtimeMs;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.type < b.type ? -1 : a.type > b.type ? 1 : 0;
}

async function namesIn(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter(isVisibleName);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}

async function describe(type: string, name: string, path: string): Promise<OutboxEntry | undefined> {
  try {
    // lstat: a symbolic link is not followed (it would let the outbox upload any file the agent can read).
    const info = await lstat(path);
    const kind = info.isFile() ? 'file' : info.isDirectory() ? 'dir' : 'other';
    return { type, name, path, kind, size: kind === 'file' ? info.size : 0, mtimeMs: info.mtimeMs, ino: info.ino, ctimeMs: info.ctimeMs };
  } catch (err) {
    // Gone between readdir and lstat (removed by its writer): nothing to do.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Every pending entry: the visible names in each directory under outbox/, oldest first. Entries in
 * a directory that is not an artifact type, and anything placed directly in outbox/, are listed
 * too (type = the directory, or '' at the top) so they can be refused visibly instead of lingering.
 */
export async function scanOutbox(layout: StateLayout): Promise<OutboxEntry[]> {
  const found: OutboxEntry[] = [];
  for (const top of await namesIn(layout.outboxDir)) {
    const topPath = join(layout.outboxDir, top);
    const topEntry = await describe('', top, topPath);
    if (topEntry === undefined) continue;
    if (topEntry.kind !== 'dir') {
      found.push(topEntry);
      continue;
    }
    for (const name of await namesIn(topPath)) {
      const entry = await describe(top, name, join(topPath, name));
      if (entry !== undefined) found.push(entry);
    }
  }
  return found.sort(compareEntries);
}
