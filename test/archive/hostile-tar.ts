import { gzipSync } from 'node:zlib';
import { Header, Pax, type HeaderData } from 'tar';

/**
 * Raw tar archives with whatever headers a test wants, hostile ones included (the fake control
 * plane's bundle builder refuses bad paths on purpose). Paths are written verbatim.
 */

const BLOCK = 512;
const MTIME = new Date(Date.UTC(2024, 0, 1));

export interface RawEntry {
  path: string;
  /** node-tar type name (default File). */
  type?: string;
  data?: string | Buffer;
  /** Declared size when it should differ from data's (default data.length for files, else 0). */
  size?: number;
  mode?: number;
  linkpath?: string;
  devmaj?: number;
  devmin?: number;
}

export function tarBlocks(entry: RawEntry): Buffer[] {
  const type = entry.type ?? 'File';
  const data = Buffer.from(entry.data ?? '');
  const size = entry.size ?? (type === 'File' || type === 'OldFile' ? data.length : 0);
  const header: HeaderData = {
    path: entry.path,
    mode: entry.mode ?? (type === 'Directory' ? 0o755 : 0o644),
    uid: 1000,
    gid: 1000,
    size,
    mtime: MTIME,
    type: type as HeaderData['type'],
    uname: '',
    gname: '',
    ...(entry.linkpath === undefined ? {} : { linkpath: entry.linkpath }),
    ...(entry.devmaj === undefined ? {} : { devmaj: entry.devmaj, devmin: entry.devmin ?? 0 }),
  };
  const block = Buffer.alloc(BLOCK);
  const blocks: Buffer[] = [];
  if (new Header(header).encode(block)) {
    blocks.push(new Pax({ path: entry.path, ...(entry.linkpath === undefined ? {} : { linkpath: entry.linkpath }), mtime: MTIME }).encode());
  }
  blocks.push(block);
  if (data.length > 0) {
    blocks.push(data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad > 0) blocks.push(Buffer.alloc(pad));
  }
  return blocks;
}

/** The uncompressed tar of `entries`, with the end-of-archive marker. */
export function rawTar(entries: RawEntry[]): Buffer {
  return Buffer.concat([...entries.flatMap(tarBlocks), Buffer.alloc(BLOCK * 2)]);
}

export function tgz(entries: RawEntry[]): Buffer {
  return gzipSync(rawTar(entries), { level: 1 });
}

/**
 * `count` one-byte files f/0 … f/<count-1>, fast: one header is encoded by node-tar, the rest are
 * copies with the name and checksum patched (encoding 100,000 headers one by one takes seconds).
 */
export function manyTinyFiles(count: number): Buffer {
  const template = Buffer.concat(tarBlocks({ path: 'f/0', data: 'x' }));
  const out = Buffer.alloc(template.length * count + BLOCK * 2);
  for (let i = 0; i < count; i += 1) {
    const at = i * template.length;
    template.copy(out, at);
    out.fill(0, at, at + 100);
    out.write(`f/${i}`, at, 'ascii');
    out.fill(0x20, at + 148, at + 156);
    let sum = 0;
    for (let j = 0; j < BLOCK; j += 1) sum += out[at + j] as number;
    out.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'ascii');
  }
  return gzipSync(out, { level: 1 });
}

/** A multi-member gzip stream of `mib` MiB of zeros: valid gzip, ~1000:1, built in milliseconds. */
export function zeroBomb(mib: number): Buffer {
  const member = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
  return Buffer.concat(Array.from({ length: mib }, () => member));
}
