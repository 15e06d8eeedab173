import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { list, x as extract, type ReadEntry } from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { PACK_MTIME, PackError, packDirectory } from '../../src/archive/pack.js';
import { AbortedError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';

async function writeTree(root: string, files: Record<string, string | Buffer>, order: 'forward' | 'reverse' = 'forward'): Promise<void> {
  const paths = Object.keys(files);
  if (order === 'reverse') paths.reverse();
  for (const path of paths) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), files[path] as string | Buffer);
  }
}

const sha256 = async (path: string): Promise<string> => createHash('sha256').update(await readFile(path)).digest('hex');

const TREE = {
  'meta.json': '{"trigger":"watchdog"}\n',
  'logs/app.log': 'line 1\nline 2\n',
  'logs/z-last.log': 'z\n',
  'cores/core.1234': Buffer.alloc(200_000, 7),
  'a/b/c/deep.txt': 'deep\n',
  [`long/${'n'.repeat(140)}.txt`]: 'a path longer than ustar holds\n',
  'ünïcode.txt': 'utf-8 name\n',
};

async function listEntries(archive: string): Promise<ReadEntry[]> {
  const entries: ReadEntry[] = [];
  await list({ file: archive, onReadEntry: (entry) => void entries.push(entry) });
  return entries;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

describe('packDirectory', () => {
  it('gives the same bytes for the same tree, whatever its mtimes, permission bits and creation order', async () => {
    const one = await tempDir('pack-src-');
    const two = await tempDir('pack-src-');
    const out = await tempDir('pack-out-');
    await writeTree(one, TREE, 'forward');
    await writeTree(two, TREE, 'reverse');
    await mkdir(join(one, 'empty'));
    await mkdir(join(two, 'empty'));
    await symlink('../meta.json', join(one, 'logs', 'meta-link'));
    await symlink('../meta.json', join(two, 'logs', 'meta-link'));
    await chmod(join(two, 'meta.json'), 0o600);
    await chmod(join(two, 'logs'), 0o700);
    await utimes(join(two, 'logs/app.log'), new Date('2031-05-05'), new Date('2031-05-05'));

    const first = await packDirectory(one, join(out, 'one.tar.gz'));
    const again = await packDirectory(one, join(out, 'again.tar.gz'));
    const other = await packDirectory(two, join(out, 'two.tar.gz'));

    expect(again.sha256).toBe(first.sha256);
    expect(other.sha256).toBe(first.sha256);
    expect(await sha256(join(out, 'one.tar.gz'))).toBe(first.sha256);
    expect((await readFile(join(out, 'one.tar.gz'))).length).toBe(first.size);
    expect(await readFile(join(out, 'two.tar.gz'))).toEqual(await readFile(join(out, 'one.tar.gz')));
  });

  it('gives a different hash when one byte of content differs', async () => {
    const one = await tempDir('pack-src-');
    const out = await tempDir('pack-out-');
    await writeTree(one, TREE);
    const before = await packDirectory(one, join(out, 'a.tar.gz'));
    await writeFile(join(one, 'logs/app.log'), 'line 1\nline 3\n');
    const after = await packDirectory(one, join(out, 'b.tar.gz'));
    expect(after.sha256).not.toBe(before.sha256);
  });

  it('writes sorted entries with fixed mtime, owners and normalised modes, and a gzip header without a timestamp', async () => {
    const src = await tempDir('pack-src-');
    const out = await tempDir('pack-out-');
    await writeTree(src, TREE);
    await writeFile(join(src, 'run.sh'), '#!/bin/sh\n');
    await chmod(join(src, 'run.sh'), 0o750);
    await chmod(join(src, 'meta.json'), 0o600);
    const archive = join(out, 'x.tar.gz');
    await packDirectory(src, archive);

    const entries = await listEntries(archive);
    const paths = entries.map((e) => e.path);
    expect(paths).toEqual([
      'a/', 'a/b/', 'a/b/c/', 'a/b/c/deep.txt',
      'cores/', 'cores/core.1234',
      'logs/', 'logs/app.log', 'logs/z-last.log',
      'long/', `long/${'n'.repeat(140)}.txt`,
      'meta.json', 'run.sh', 'ünïcode.txt',
    ]);
    for (const entry of entries) {
      expect(entry.mtime?.getTime()).toBe(PACK_MTIME.getTime());
      expect(entry.uid).toBe(0);
      expect(entry.gid).toBe(0);
      expect(entry.uname ?? '').toBe('');
      expect(entry.gname ?? '').toBe('');
      const expected = entry.type === 'Directory' || entry.path === 'run.sh' ? 0o755 : 0o644;
      expect({ path: entry.path, mode: entry.mode }).toEqual({ path: entry.path, mode: expected });
    }
    const gz = await readFile(archive);
    expect([...gz.subarray(0, 4)]).toEqual([0x1f, 0x8b, 8, 0]);
    expect(gz.readUInt32LE(4)).toBe(0);
  });

  it('round-trips: extracting the archive gives back the same files', async () => {
    const src = await tempDir('pack-src-');
    const out = await tempDir('pack-out-');
    const back = await tempDir('pack-back-');
    await writeTree(src, TREE);
    await packDirectory(src, join(out, 'x.tar.gz'));
    await extract({ file: join(out, 'x.tar.gz'), cwd: back });
    for (const [path, content] of Object.entries(TREE)) {
      expect(await readFile(join(back, path))).toEqual(Buffer.from(content));
    }
  });

  it('stops at the size cap and leaves neither the archive nor a temp file', async () => {
    const src = await tempDir('pack-src-');
    const out = await tempDir('pack-out-');
    // Random bytes do not compress: the archive is as large as the input.
    await writeTree(src, { 'noise.bin': randomBytes(300_000) });
    const error = await packDirectory(src, join(out, 'x.tar.gz'), { maxBytes: 50_000 }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(PackError);
    expect((error as PackError).code).toBe('too_large');
    expect(await readdir(out)).toEqual([]);
  });

  it('removes its temp file when a write fails (disk full)', async () => {
    const src = await tempDir('pack-src-');
    const out = await tempDir('pack-out-');
    await writeTree(src, TREE);
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    let calls = 0;
    const error = await packDirectory(src, join(out, 'x.tar.gz'), {
      beforeWrite: () => {
        calls += 1;
        if (calls === 2) throw enospc;
      },
    }).catch((err: unknown) => err);
    expect(error).toBe(enospc);
    expect(await readdir(out)).toEqual([]);
  });

  it('refuses sockets, FIFOs and devices', async () => {
    const src = await tempDir('pack-src-');
    const out = await tempDir('pack-out-');
    await writeTree(src, { 'ok.txt': 'fine\n' });
    const server = createServer();
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(join(src, 'control.sock'), resolve));
    const error = await packDirectory(src, join(out, 'x.tar.gz')).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(PackError);
    expect((error as PackError).code).toBe('unsupported_entry');
    expect((error as Error).message).toContain('control.sock');
    expect(await readdir(out)).toEqual([]);
  });

  it('stops when aborted and cleans up', async () => {
    const src = await tempDir('pack-src-');
    const out = await tempDir('pack-out-');
    await writeTree(src, TREE);
    const controller = new AbortController();
    const error = await packDirectory(src, join(out, 'x.tar.gz'), {
      signal: controller.signal,
      beforeWrite: () => controller.abort(),
    }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(AbortedError);
    expect(await readdir(out)).toEqual([]);
  });
});
