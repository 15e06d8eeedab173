import { lstat, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ArchiveError } from '../../src/archive/errors.js';
import { extractArchive, type ExtractOptions } from '../../src/archive/extract.js';
import { AbortedError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';
import { manyTinyFiles, rawTar, tgz, zeroBomb, type RawEntry } from './hostile-tar.js';

interface Site {
  root: string;
  archive: string;
  outside: string;
  dest: string;
}

async function site(bytes: Buffer): Promise<Site> {
  const root = await tempDir('byteor-extract-');
  const outside = join(root, 'outside');
  await mkdir(outside);
  await mkdir(join(root, 'bundles'));
  const archive = join(root, 'bundle.tar.gz');
  await writeFile(archive, bytes);
  return { root, archive, outside, dest: join(root, 'bundles', 'b1') };
}

/** Every path under `root` (lstat: links are not followed), relative and sorted. */
async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      out.push(relative(root, full));
      if (entry.isDirectory()) await walk(full);
    }
  }
  await walk(root);
  return out.sort();
}

/** Extraction must fail with `reason`, leaving the whole site exactly as it was. */
async function expectRefused(bytes: Buffer, reason: ArchiveError['reason'], options: ExtractOptions = {}): Promise<ArchiveError> {
  const s = await site(bytes);
  const before = await tree(s.root);
  const err = await extractArchive(s.archive, s.dest, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ArchiveError);
  expect((err as ArchiveError).reason).toBe(reason);
  expect(await tree(s.root)).toEqual(before);
  return err as ArchiveError;
}

describe('extractArchive: well-formed bundles', () => {
  it('extracts files and directories into place, dropping special mode bits', async () => {
    const s = await site(
      tgz([
        { path: './', type: 'Directory', mode: 0o777 },
        { path: 'conf/', type: 'Directory', mode: 0o777 },
        { path: 'conf/app.yaml', data: 'port: 80\n', mode: 0o4666 },
        { path: 'bin/run.sh', data: '#!/bin/sh\n', mode: 0o6755 },
        { path: 'spec.kv', data: 'a=1\n' },
      ]),
    );
    const result = await extractArchive(s.archive, s.dest);
    expect(result).toEqual({ dir: s.dest, entries: 4, bytes: 9 + 10 + 4 });
    expect(await readFile(join(s.dest, 'conf/app.yaml'), 'utf8')).toBe('port: 80\n');
    expect((await stat(join(s.dest, 'conf/app.yaml'))).mode & 0o7777).toBe(0o644 & ~process.umask() | 0o600);
    expect((await stat(join(s.dest, 'bin/run.sh'))).mode & 0o7000).toBe(0);
    expect((await stat(join(s.dest, 'conf'))).mode & 0o022).toBe(0);
    // The bundle root keeps the staging directory's private mode, whatever `./` says.
    expect((await stat(s.dest)).mode & 0o777).toBe(0o700);
    expect(await readdir(join(s.root, 'bundles'))).toEqual(['b1']);
    expect((await stat(join(s.dest, 'spec.kv'))).uid).toBe(process.getuid?.());
  });

  it('keeps an existing destination (same content address) and cleans its staging directory', async () => {
    const bytes = tgz([{ path: 'a', data: 'x' }]);
    const s = await site(bytes);
    await extractArchive(s.archive, s.dest);
    await extractArchive(s.archive, s.dest);
    expect(await readdir(join(s.root, 'bundles'))).toEqual(['b1']);
  });

  it('commits nothing when beforeCommit refuses', async () => {
    const s = await site(tgz([{ path: 'spec.kv', data: 'a=1' }]));
    const refusal = new Error('spec not approved');
    let seen: string | undefined;
    await expect(
      extractArchive(s.archive, s.dest, {
        beforeCommit: async (staging) => {
          seen = await readFile(join(staging, 'spec.kv'), 'utf8');
          throw refusal;
        },
      }),
    ).rejects.toBe(refusal);
    expect(seen).toBe('a=1');
    expect(await readdir(join(s.root, 'bundles'))).toEqual([]);
  });

  it('stops and cleans up when shutdown aborts it', async () => {
    const s = await site(tgz([{ path: 'a', data: 'x' }]));
    const controller = new AbortController();
    controller.abort();
    await expect(extractArchive(s.archive, s.dest, { signal: controller.signal })).rejects.toBeInstanceOf(AbortedError);
    expect(await readdir(join(s.root, 'bundles'))).toEqual([]);
  });
});

describe('extractArchive: hostile archives', () => {
  it('refuses ../ paths', async () => {
    await expectRefused(tgz([{ path: 'ok.txt', data: 'fine' }, { path: '../outside/escaped', data: 'pwned' }]), 'unsafe_archive');
    await expectRefused(tgz([{ path: 'a/../../outside/escaped', data: 'pwned' }]), 'unsafe_archive');
  });

  it('refuses absolute paths', async () => {
    const s = await site(Buffer.alloc(0));
    const target = join(s.outside, 'absolute');
    await expectRefused(tgz([{ path: target, data: 'pwned' }]), 'unsafe_archive');
    await expect(lstat(target)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses symlinks that escape, and a file written through one', async () => {
    const s = await site(Buffer.alloc(0));
    await expectRefused(tgz([{ path: 'etc', type: 'SymbolicLink', linkpath: '/etc' }]), 'unsafe_archive');
    await expectRefused(tgz([{ path: 'up', type: 'SymbolicLink', linkpath: '../../..' }]), 'unsafe_archive');
    await expectRefused(tgz([{ path: 'inside', type: 'SymbolicLink', linkpath: 'conf' }]), 'unsafe_archive');
    await expectRefused(
      tgz([
        { path: 'dir', type: 'SymbolicLink', linkpath: s.outside },
        { path: 'dir/pwned', data: 'through the link' },
      ]),
      'unsafe_archive',
    );
    expect(await readdir(s.outside)).toEqual([]);
  });

  it('refuses hard links, escaping or not', async () => {
    await expectRefused(tgz([{ path: 'hl', type: 'Link', linkpath: '../../outside/x' }]), 'unsafe_archive');
    await expectRefused(tgz([{ path: 'a', data: 'x' }, { path: 'hl', type: 'Link', linkpath: 'a' }]), 'unsafe_archive');
  });

  it('refuses device and FIFO entries', async () => {
    await expectRefused(tgz([{ path: 'null', type: 'CharacterDevice', devmaj: 1, devmin: 3 }]), 'unsafe_archive');
    await expectRefused(tgz([{ path: 'sda', type: 'BlockDevice', devmaj: 8, devmin: 0 }]), 'unsafe_archive');
    await expectRefused(tgz([{ path: 'pipe', type: 'FIFO' }]), 'unsafe_archive');
  });

  it('refuses duplicate paths', async () => {
    await expectRefused(tgz([{ path: 'spec.kv', data: 'approved=1' }, { path: 'spec.kv', data: 'approved=0' }]), 'unsafe_archive');
    await expectRefused(tgz([{ path: 'conf/', type: 'Directory' }, { path: 'x', data: '1' }, { path: './conf/', type: 'Directory' }]), 'unsafe_archive');
    await expectRefused(tgz([{ path: 'd/file', data: '1' }, { path: 'd', data: 'now a file' }]), 'unsafe_archive');
  });

  it('refuses a gzip bomb (zeros that belong to no entry) at the default limits', async () => {
    // 1 GiB of zeros in ~1 MiB of gzip; refused after 32 MiB, long before the disk or memory notice.
    const bomb = zeroBomb(1024);
    expect(bomb.length).toBeLessThan(1.1 * 1024 * 1024);
    const err = await expectRefused(bomb, 'archive_too_large');
    expect(err.message).toMatch(/gzip bomb/);
  });

  it('refuses an entry declaring more bytes than the total cap, before writing it', async () => {
    await expectRefused(tgz([{ path: 'big', size: 2 * 1024 * 1024 * 1024, data: '' }]), 'archive_too_large');
    await expectRefused(tgz([{ path: 'a', data: 'x'.repeat(600) }, { path: 'b', data: 'y'.repeat(600) }]), 'archive_too_large', { limits: { maxTotalBytes: 1000 } });
  });

  it('refuses garbage after the end-of-archive marker', async () => {
    const tar = Buffer.concat([rawTar([{ path: 'a', data: 'x' }]), Buffer.alloc(4 * 1024 * 1024, 1)]);
    await expectRefused(gzipSync(tar, { level: 1 }), 'archive_too_large', { limits: { maxUnaccountedBytes: 1024 * 1024 } });
  });

  it('refuses 100,000 tiny entries', async () => {
    // The cap is lowered so the test does not create 10,000 files first (seconds on a slow disk);
    // the default of 10,000 is asserted on the pure policy, with the same code path.
    const err = await expectRefused(manyTinyFiles(100_000), 'archive_too_large', { limits: { maxEntries: 1000 } });
    expect(err.message).toBe('more than 1000 entries');
  });

  it('refuses very deep nesting', async () => {
    await expectRefused(tgz([{ path: `${'d/'.repeat(200)}deep.txt`, data: 'x' }]), 'archive_too_large');
    const dirs: RawEntry[] = Array.from({ length: 70 }, (_, i) => ({ path: `${'n/'.repeat(i + 1)}`, type: 'Directory' }));
    await expectRefused(tgz(dirs), 'archive_too_large');
  });

  it('refuses what is not a gzip\'d tar: plain bytes, a truncated stream, a bad checksum', async () => {
    await expectRefused(Buffer.from('this is not gzip at all, just text'), 'unsafe_archive');
    const good = tgz([{ path: 'a', data: 'x'.repeat(10_000) }]);
    await expectRefused(good.subarray(0, good.length - 30), 'unsafe_archive');
    const tar = rawTar([{ path: 'a', data: 'x' }]);
    tar[148] = 0x39; // corrupt the header checksum
    await expectRefused(gzipSync(tar), 'unsafe_archive');
    await expectRefused(gzipSync(Buffer.from('not a tar, but gzip'.repeat(100))), 'unsafe_archive');
  });
});
