import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Header, Pax, type HeaderData } from 'tar';

/**
 * Bundles (API.md §4): gzip'd tar archives of regular files and directories. Built in memory with
 * node-tar's header encoder so the bytes are deterministic (fixed mtime, owner, modes, order):
 * the same files always give the same sha256, which keeps ETags and dedup tests stable.
 * Hostile archives are the archive tests' business, so paths here are checked and refused.
 */

const BLOCK = 512;
/** A fixed mtime (2024-01-01T00:00:00Z): deterministic bytes, and no "file from 1970" oddities. */
const FIXED_MTIME = new Date(Date.UTC(2024, 0, 1));

export type BundleFiles = Record<string, string | Uint8Array>;

interface Entry {
  path: string;
  type: 'File' | 'Directory';
  mode: number;
  data: Buffer;
}

function checkRelativePath(path: string): string {
  const clean = path.replace(/\/+$/, '');
  if (clean === '' || clean.startsWith('/') || clean.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`bundle path must be relative without '.', '..' or empty segments: ${JSON.stringify(path)}`);
  }
  return clean;
}

function encodeEntry(entry: Entry): Buffer[] {
  const data: HeaderData = {
    path: entry.type === 'Directory' ? `${entry.path}/` : entry.path,
    mode: entry.mode,
    uid: 0,
    gid: 0,
    size: entry.type === 'File' ? entry.data.length : 0,
    mtime: FIXED_MTIME,
    type: entry.type,
    uname: '',
    gname: '',
  };
  const header = new Header(data);
  const block = Buffer.alloc(BLOCK);
  const blocks: Buffer[] = [];
  // Paths too long for ustar's name/prefix fields go into a pax extended header first.
  if (header.encode(block)) blocks.push(new Pax({ path: data.path, mtime: FIXED_MTIME }).encode());
  blocks.push(block);
  if (entry.type === 'File' && entry.data.length > 0) {
    blocks.push(entry.data);
    const pad = (BLOCK - (entry.data.length % BLOCK)) % BLOCK;
    if (pad > 0) blocks.push(Buffer.alloc(pad));
  }
  return blocks;
}

function packEntries(entries: Entry[]): Buffer {
  // Every parent directory gets its own entry, before its children; then sort for determinism.
  const byPath = new Map<string, Entry>();
  for (const entry of entries) {
    const parts = entry.path.split('/');
    for (let i = 1; i < parts.length; i += 1) {
      const dir = parts.slice(0, i).join('/');
      if (!byPath.has(dir)) byPath.set(dir, { path: dir, type: 'Directory', mode: 0o755, data: Buffer.alloc(0) });
    }
    byPath.set(entry.path, entry);
  }
  const sorted = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const tar = Buffer.concat([...sorted.flatMap(encodeEntry), Buffer.alloc(BLOCK * 2)]);
  return gzipSync(tar, { level: 9 });
}

/**
 * A bundle from in-memory files: `{ 'spec.kv': '…', 'conf/app.yaml': '…' }`. A key ending in '/'
 * is an (empty) directory. Async for symmetry with bundleFromDirectory; the work is synchronous.
 */
export async function buildBundle(files: BundleFiles): Promise<Buffer> {
  return buildBundleSync(files);
}

export function buildBundleSync(files: BundleFiles): Buffer {
  const entries: Entry[] = Object.entries(files).map(([path, content]) => {
    const clean = checkRelativePath(path);
    if (path.endsWith('/')) return { path: clean, type: 'Directory', mode: 0o755, data: Buffer.alloc(0) };
    return { path: clean, type: 'File', mode: 0o644, data: Buffer.from(content) };
  });
  return packEntries(entries);
}

/** Packs a directory tree (regular files and directories only; anything else is refused). */
export async function bundleFromDirectory(dir: string): Promise<Buffer> {
  const entries: Entry[] = [];
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const relPath = rel === '' ? name : `${rel}/${name}`;
      const full = join(dir, relPath);
      const stat = await lstat(full);
      if (stat.isDirectory()) {
        entries.push({ path: relPath, type: 'Directory', mode: 0o755, data: Buffer.alloc(0) });
        await walk(relPath);
      } else if (stat.isFile()) {
        entries.push({ path: relPath, type: 'File', mode: (stat.mode & 0o111) !== 0 ? 0o755 : 0o644, data: await readFile(full) });
      } else {
        throw new Error(`${full}: a bundle holds only regular files and directories`);
      }
    }
  }
  await walk('');
  return packEntries(entries);
}

export interface BundleEntry {
  path: string;
  type: string;
  size: number;
  mode: number;
  data: Buffer;
}

/**
 * Lists a (well-formed) bundle synchronously. For the fake's own needs (reading spec.kv to
 * fill an approval credential's spec_hash) and for tests; not a safe extractor.
 */
export function listBundle(bundle: Uint8Array): BundleEntry[] {
  const tar = gunzipSync(bundle);
  const out: BundleEntry[] = [];
  let offset = 0;
  let extended: HeaderData | undefined;
  let longPath: string | undefined;
  while (offset + BLOCK <= tar.length) {
    const header = new Header(tar, offset);
    if (header.nullBlock) break;
    const size = header.size ?? 0;
    const body = tar.subarray(offset + BLOCK, offset + BLOCK + size);
    offset += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (header.type === 'ExtendedHeader') {
      extended = Pax.parse(body.toString('utf8'), undefined, false);
      continue;
    }
    if (header.type === 'NextFileHasLongPath') {
      longPath = body.toString('utf8').replace(/\0+$/, '');
      continue;
    }
    if (header.type === 'GlobalExtendedHeader') continue;
    // A pax path (or GNU long name) replaces the ustar name+prefix entirely.
    const path = (extended?.path ?? longPath ?? header.path ?? '').replace(/^\.\//, '');
    out.push({ path, type: header.type, size, mode: header.mode ?? 0, data: Buffer.from(body) });
    extended = undefined;
    longPath = undefined;
  }
  return out;
}

/** The content of a regular file in the bundle (e.g. 'spec.kv'), or undefined. */
export function readBundleFile(bundle: Uint8Array, path: string): Buffer | undefined {
  try {
    return listBundle(bundle).find((entry) => entry.path === path && (entry.type === 'File' || entry.type === 'OldFile'))?.data;
  } catch {
    // Not a readable tar.gz (a deliberately broken bundle): it has no spec.
    return undefined;
  }
}
