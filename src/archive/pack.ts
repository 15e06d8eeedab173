import { createHash } from 'node:crypto';
import { lstat, open, readdir, readlink, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { HeaderData } from 'tar';
import { loadTar } from './tar-module.js';
import { AbortedError } from '../errors.js';
import { fsyncDirectory, tempPathFor } from '../util/atomic-write.js';
import { releaseConsumedChunks } from '../util/gc.js';

/**
 * Deterministic .tar.gz of a directory: the same tree always gives the same bytes, so the same
 * capture hashes the same and the control plane's dedup works (API.md §6).
 *
 * Headers are written here with node-tar's Header/Pax encoders rather than its Pack class: Pack
 * recurses in readdir order (filesystem-dependent) and keeps each file's permission bits, owner
 * and name strings, none of which it lets us normalise. What is fixed here:
 *  - order: depth first, each directory's children sorted by the bytes of their UTF-8 names,
 *    a directory before its contents;
 *  - mtime PACK_MTIME, uid/gid 0, uname/gname empty, no atime/ctime, no device/inode numbers;
 *  - mode 0755 for directories and for files with the owner's execute bit, 0644 for other files;
 *  - ustar headers, plus a pax header only for what ustar cannot hold (long or non-ASCII paths);
 *  - gzip level 6 through Node's zlib, whose header carries MTIME 0 and no file name.
 * Paths are relative to the directory (no leading "./", no top-level directory).
 */

/** 2000-01-01T00:00:00Z: a fixed, plausible timestamp (tools warn about 1970). */
export const PACK_MTIME = new Date(Date.UTC(2000, 0, 1));

const BLOCK = 512;
const GZIP_LEVEL = 6;
const READ_CHUNK = 256 * 1024;
/** Consumed input chunks are freed this often (see util/gc.ts): a 64 MiB capture would otherwise leave ~30 MB of garbage. */
const RELEASE_EVERY_BYTES = 4 * 1024 * 1024;
/** A capture with more entries than this is not an incident bundle; the walk keeps them in memory. */
export const MAX_PACK_ENTRIES = 100_000;

export type PackErrorCode = 'too_large' | 'unsupported_entry' | 'too_many_entries' | 'changed';

/** A directory that cannot become an artifact as it is (or changed under us while packing). */
export class PackError extends Error {
  constructor(
    readonly code: PackErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'PackError';
  }
}

export interface PackOptions {
  /** The archive may not exceed this many bytes; packing stops (and cleans up) as soon as it does. */
  maxBytes?: number;
  signal?: AbortSignal | undefined;
  /**
   * Called before each compressed chunk is written, with the bytes written so far. A test seam:
   * throwing there looks like a failing write (e.g. ENOSPC), never resolving looks like a kill.
   */
  beforeWrite?: (written: number) => void | Promise<void>;
}

export interface PackResult {
  sha256: string;
  size: number;
  entries: number;
}

interface WalkEntry {
  rel: string;
  abs: string;
  kind: 'file' | 'dir' | 'symlink';
  mode: number;
}

const byUtf8 = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/** Every entry under `root`, in archive order. Refuses sockets, FIFOs and devices. */
export async function walkSorted(root: string): Promise<WalkEntry[]> {
  const out: WalkEntry[] = [];
  const visit = async (absDir: string, relDir: string): Promise<void> => {
    const names = (await readdir(absDir)).sort(byUtf8);
    for (const name of names) {
      const abs = join(absDir, name);
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      const info = await lstat(abs);
      if (out.length >= MAX_PACK_ENTRIES) throw new PackError('too_many_entries', `more than ${MAX_PACK_ENTRIES} entries`);
      if (info.isDirectory()) {
        out.push({ rel, abs, kind: 'dir', mode: info.mode });
        await visit(abs, rel);
      } else if (info.isFile()) {
        out.push({ rel, abs, kind: 'file', mode: info.mode });
      } else if (info.isSymbolicLink()) {
        out.push({ rel, abs, kind: 'symlink', mode: info.mode });
      } else {
        throw new PackError('unsupported_entry', `${rel} is a socket, FIFO or device; only files, directories and symbolic links can be packed`);
      }
    }
  };
  await visit(root, '');
  return out;
}

export function normalisedMode(kind: WalkEntry['kind'], mode: number): number {
  if (kind === 'symlink') return 0o777;
  if (kind === 'dir') return 0o755;
  return (mode & 0o100) !== 0 ? 0o755 : 0o644;
}

function headerBlocks(tar: Awaited<ReturnType<typeof loadTar>>, data: HeaderData): Buffer[] {
  const block = Buffer.alloc(BLOCK);
  const needsPax = new tar.Header(data).encode(block);
  if (!needsPax) return [block];
  // Only what ustar cannot hold; the pax header's own header is as fixed as the entry's.
  const pax = new tar.Pax({ path: data.path, linkpath: data.linkpath === '' ? undefined : data.linkpath, mtime: PACK_MTIME }).encode();
  return [pax, block];
}

function baseHeader(entry: WalkEntry): HeaderData {
  return { path: entry.rel, mode: normalisedMode(entry.kind, entry.mode), uid: 0, gid: 0, size: 0, mtime: PACK_MTIME, uname: '', gname: '', linkpath: '' };
}

/** The tar stream of `entries`, reading each file exactly as large as it was when opened. */
async function* tarChunks(entries: WalkEntry[]): AsyncGenerator<Buffer> {
  const tar = await loadTar();
  for (const entry of entries) {
    if (entry.kind === 'dir') {
      yield* headerBlocks(tar, { ...baseHeader(entry), path: `${entry.rel}/`, type: 'Directory' });
    } else if (entry.kind === 'symlink') {
      yield* headerBlocks(tar, { ...baseHeader(entry), type: 'SymbolicLink', linkpath: await readlink(entry.abs) });
    } else {
      yield* fileChunks(tar, entry);
    }
  }
  yield Buffer.alloc(2 * BLOCK);
}

async function* fileChunks(tar: Awaited<ReturnType<typeof loadTar>>, entry: WalkEntry): AsyncGenerator<Buffer> {
  const handle = await open(entry.abs, 'r');
  try {
    const before = await handle.stat();
    const size = before.size;
    yield* headerBlocks(tar, { ...baseHeader(entry), mode: normalisedMode('file', before.mode), size, type: 'File' });
    let done = 0;
    let sinceRelease = 0;
    while (done < size) {
      const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - done));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, done);
      if (bytesRead === 0) throw new PackError('changed', `${entry.rel} shrank while being packed`);
      done += bytesRead;
      sinceRelease += bytesRead;
      if (sinceRelease >= RELEASE_EVERY_BYTES) {
        sinceRelease = 0;
        releaseConsumedChunks();
      }
      yield buffer.subarray(0, bytesRead);
    }
    const after = await handle.stat();
    if (after.size !== size || after.mtimeMs !== before.mtimeMs) throw new PackError('changed', `${entry.rel} changed while being packed`);
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad > 0) yield Buffer.alloc(pad);
  } finally {
    await handle.close();
  }
}

/**
 * Packs directory `src` into `dest` (.tar.gz): streamed to a temp file beside `dest`, fsynced,
 * then renamed, so `dest` is either absent or complete. The temp file is removed on any failure
 * (too large, unreadable, disk full, aborted). Returns the archive's sha256 and size, computed
 * while writing.
 */
export async function packDirectory(src: string, dest: string, options: PackOptions = {}): Promise<PackResult> {
  const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  const entries = await walkSorted(src);
  const temp = tempPathFor(dest);
  const hash = createHash('sha256');
  let written = 0;
  let handle: FileHandle | undefined;
  // pipeline() may report the teardown (an AbortError) instead of what failed first: keep the first.
  let cause: unknown;
  try {
    handle = await open(temp, 'wx', 0o600);
    const file = handle;
    // A sink that writes through the handle (not a WriteStream), so the handle stays ours to fsync.
    const sink = async (source: AsyncIterable<Buffer>): Promise<void> => {
      try {
        for await (const chunk of source) {
          if (written + chunk.length > maxBytes) throw new PackError('too_large', `the archive exceeds ${maxBytes} bytes`);
          await options.beforeWrite?.(written);
          await file.write(chunk);
          written += chunk.length;
          hash.update(chunk);
        }
      } catch (err) {
        cause ??= err;
        throw err;
      }
    };
    const source = async function* (): AsyncGenerator<Buffer> {
      try {
        yield* tarChunks(entries);
      } catch (err) {
        cause ??= err;
        throw err;
      }
    };
    await pipeline(Readable.from(source()), createGzip({ level: GZIP_LEVEL }), sink, options.signal === undefined ? {} : { signal: options.signal });
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, dest);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    if (options.signal?.aborted === true) throw new AbortedError('packing aborted by shutdown');
    throw cause ?? err;
  }
  await fsyncDirectory(dirname(dest));
  return { sha256: hash.digest('hex'), size: written, entries: entries.length };
}
