import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { MAX_ARTIFACT_BYTES } from '../../api/types.js';
import { packDirectory } from '../../archive/pack.js';
import type { StateLayout } from '../../state/layout.js';
import { sha256File } from '../../util/hash-file.js';
import { unlinkQuietly } from './disk.js';
import { entryKey, type OutboxEntry } from './entries.js';

/** The bytes to send for an entry, and what the metadata says about them. */
export interface Prepared {
  /** The file whose bytes are sent: the entry itself, or its packed archive. */
  path: string;
  packed: boolean;
  sha256: string;
  size: number;
  filename: string;
  contentType: string;
  capturedAt: string;
}

interface CacheItem {
  stamp: string;
  prepared: Prepared;
}

/** A file-ish name that says gzip gets application/gzip (API.md §6), anything else octet-stream. */
export function contentTypeFor(filename: string, packed: boolean): string {
  return packed || /\.(t?gz|tar\.gz)$/i.test(filename) ? 'application/gzip' : 'application/octet-stream';
}

/** What identifies the entry as it was renamed in; a different stamp is a different entry. */
const stampOf = (entry: OutboxEntry): string => `${entry.ino}:${entry.kind}:${entry.size}:${entry.mtimeMs}:${entry.ctimeMs}`;

export interface PrepareOptions {
  signal?: AbortSignal | undefined;
  /** Forwarded to packDirectory (a test seam for write failures and kills). */
  beforeWrite?: (written: number) => void | Promise<void>;
}

/**
 * Packs directories into the outbox's private .packed/ area and hashes what will be sent, keeping
 * the result per entry so a 429 storm does not re-pack and re-hash 64 MiB on every retry. The cache
 * lives as long as the process: cleanOnStart() empties .packed/ on the next start.
 */
export class Preparer {
  private readonly cache = new Map<string, CacheItem>();

  constructor(
    private readonly layout: StateLayout,
    private readonly maxBytes: number = MAX_ARTIFACT_BYTES,
  ) {}

  packedPathFor(entry: Pick<OutboxEntry, 'type' | 'name'>): string {
    // Hashed: an entry name may be up to NAME_MAX already, and may not be a safe file name twice.
    return join(this.layout.outboxPackedDir, `${createHash('sha256').update(entryKey(entry)).digest('hex').slice(0, 32)}.tar.gz`);
  }

  async prepare(entry: OutboxEntry, options: PrepareOptions = {}): Promise<Prepared> {
    const key = entryKey(entry);
    const stamp = stampOf(entry);
    const cached = this.cache.get(key);
    if (cached !== undefined && cached.stamp === stamp) return cached.prepared;
    await this.forget(entry);
    const capturedAt = new Date(entry.mtimeMs).toISOString();
    let prepared: Prepared;
    if (entry.kind === 'dir') {
      const path = this.packedPathFor(entry);
      const packed = await packDirectory(entry.path, path, { maxBytes: this.maxBytes, signal: options.signal, ...(options.beforeWrite ? { beforeWrite: options.beforeWrite } : {}) });
      const filename = `${entry.name}.tar.gz`;
      prepared = { path, packed: true, sha256: packed.sha256, size: packed.size, filename, contentType: contentTypeFor(filename, true), capturedAt };
    } else {
      const hashed = await sha256File(entry.path, options.signal);
      prepared = { path: entry.path, packed: false, sha256: hashed.sha256, size: hashed.size, filename: entry.name, contentType: contentTypeFor(entry.name, false), capturedAt };
    }
    this.cache.set(key, { stamp, prepared });
    return prepared;
  }

  /** Drops what was prepared for the entry, including its packed archive. */
  async forget(entry: Pick<OutboxEntry, 'type' | 'name'>): Promise<void> {
    this.cache.delete(entryKey(entry));
    await unlinkQuietly(this.packedPathFor(entry));
  }
}
