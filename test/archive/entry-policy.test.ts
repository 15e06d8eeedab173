import { describe, expect, it } from 'vitest';
import { admit, decideEntry, newTally, normalizeEntryPath, sanitizeMode, type EntryDecision, type EntryFacts, type EntryTally } from '../../src/archive/entry-policy.js';
import { archiveLimits } from '../../src/archive/limits.js';

const limits = archiveLimits({ maxEntries: 5, maxTotalBytes: 1000, maxDepth: 4, maxPathBytes: 40, maxNameBytes: 12 });
const file = (path: string, size = 1, mode = 0o644): EntryFacts => ({ path, type: 'File', size, mode });
const dir = (path: string): EntryFacts => ({ path, type: 'Directory', size: 0, mode: 0o755 });

/** Feeds entries in order like the extractor does; returns each decision. */
function run(entries: EntryFacts[], tally: EntryTally = newTally()): EntryDecision[] {
  return entries.map((facts) => {
    const decision = decideEntry(facts, tally, limits);
    if (decision.kind === 'extract') admit(tally, decision);
    return decision;
  });
}

const last = (entries: EntryFacts[]): EntryDecision => run(entries).at(-1) as EntryDecision;

describe('normalizeEntryPath', () => {
  it.each([
    ['a/b', 'a/b'],
    ['./a/b/', 'a/b'],
    ['././a', 'a'],
    ['dir/', 'dir'],
  ])('%s → %s', (raw, path) => expect(normalizeEntryPath(raw)).toEqual({ path }));

  it('recognises the root entry', () => {
    expect(normalizeEntryPath('./')).toEqual({ root: true });
    expect(normalizeEntryPath('.')).toEqual({ root: true });
  });

  it.each(['/etc/passwd', '../x', 'a/../../x', 'a/..', 'a//b', 'a/./b', '', 'a\\..\\b', 'new\nline'])('refuses %j', (raw) => {
    expect(normalizeEntryPath(raw)).toHaveProperty('problem');
  });
});

describe('decideEntry', () => {
  it('admits regular files and directories with sanitised modes', () => {
    expect(run([dir('conf/'), file('conf/app.yaml', 10, 0o6777), file('bin/run', 3, 0o755)])).toEqual([
      { kind: 'extract', path: 'conf', entryType: 'directory', size: 0, mode: 0o755 },
      { kind: 'extract', path: 'conf/app.yaml', entryType: 'file', size: 10, mode: 0o755 },
      { kind: 'extract', path: 'bin/run', entryType: 'file', size: 3, mode: 0o755 },
    ]);
  });

  it('drops setuid, setgid, sticky and group/other write, keeps the owner able to read', () => {
    expect(sanitizeMode(0o4777, 'file')).toBe(0o755);
    expect(sanitizeMode(0o2666, 'file')).toBe(0o644);
    expect(sanitizeMode(0o000, 'file')).toBe(0o600);
    expect(sanitizeMode(0o1777, 'directory')).toBe(0o755);
    expect(sanitizeMode(0o000, 'directory')).toBe(0o700);
  });

  it('skips the root directory entry but refuses a file in its place', () => {
    expect(last([dir('./')])).toEqual({ kind: 'skip' });
    expect(last([file('./')])).toMatchObject({ kind: 'refuse', reason: 'unsafe_archive' });
  });

  it.each([
    ['SymbolicLink', /symbolic link/],
    ['Link', /hard link/],
    ['CharacterDevice', /character device/],
    ['BlockDevice', /block device/],
    ['FIFO', /FIFO/],
    ['ContiguousFile', /unsupported type/],
    ['GNUDumpDir', /unsupported type/],
  ])('refuses %s entries as unsafe', (type, message) => {
    expect(last([{ path: 'x', type, size: 0, mode: 0o644 }])).toMatchObject({ kind: 'refuse', reason: 'unsafe_archive', message: expect.stringMatching(message) });
  });

  it('refuses escaping paths as unsafe', () => {
    for (const path of ['../x', '/abs', 'a/../../b']) expect(last([file(path)])).toMatchObject({ reason: 'unsafe_archive' });
  });

  it('refuses duplicates and file/directory collisions', () => {
    expect(last([file('a'), file('a')])).toMatchObject({ reason: 'unsafe_archive', message: 'duplicate entry "a"' });
    expect(last([dir('d/'), dir('./d')])).toMatchObject({ reason: 'unsafe_archive' });
    expect(last([file('d/x'), file('d')])).toMatchObject({ reason: 'unsafe_archive', message: expect.stringMatching(/collides/) });
    expect(last([file('f'), file('f/x')])).toMatchObject({ reason: 'unsafe_archive', message: expect.stringMatching(/below the file/) });
    // A directory named after an implicit parent is fine: archives list parents after children too.
    expect(last([file('d/x'), dir('d/')])).toMatchObject({ kind: 'extract' });
  });

  it('caps entries, total bytes, depth and path lengths as too large', () => {
    expect(last(['a', 'b', 'c', 'd', 'e', 'f'].map((p) => file(p)))).toMatchObject({ reason: 'archive_too_large', message: 'more than 5 entries' });
    expect(last([file('a', 600), file('b', 401)])).toMatchObject({ reason: 'archive_too_large' });
    expect(last([file('a', 600), file('b', 400)])).toMatchObject({ kind: 'extract' });
    expect(last([file('a/b/c/d/e')])).toMatchObject({ reason: 'archive_too_large', message: expect.stringMatching(/5 levels/) });
    expect(last([file('a/b/c/d')])).toMatchObject({ kind: 'extract' });
    expect(last([file('abcdefghijklm')])).toMatchObject({ reason: 'archive_too_large' });
    expect(last([file(`${'abcdefghij/'.repeat(3)}abcdefghijkl`)])).toMatchObject({ reason: 'archive_too_large' });
  });

  it('defaults to 10,000 entries and 1 GiB', () => {
    const defaults = archiveLimits();
    expect(defaults.maxEntries).toBe(10_000);
    expect(defaults.maxTotalBytes).toBe(1024 ** 3);
    const tally = newTally();
    for (let i = 0; i < 10_000; i += 1) {
      const decision = decideEntry(file(`f/${i}`), tally, defaults);
      if (decision.kind !== 'extract') throw new Error(`entry ${i} refused`);
      admit(tally, decision);
    }
    expect(decideEntry(file('f/10000'), tally, defaults)).toEqual({ kind: 'refuse', reason: 'archive_too_large', message: 'more than 10000 entries' });
  });

  it('refuses nonsense sizes and directories carrying data', () => {
    expect(last([file('a', -1)])).toMatchObject({ reason: 'unsafe_archive' });
    expect(last([{ path: 'd', type: 'Directory', size: 10, mode: 0o755 }])).toMatchObject({ reason: 'unsafe_archive' });
  });

  it('checks the type before anything else, so a link is unsafe even past a cap', () => {
    const tally = newTally();
    run(['a', 'b', 'c', 'd', 'e'].map((p) => file(p)), tally);
    expect(decideEntry({ path: '../x', type: 'SymbolicLink', size: 0, mode: 0 }, tally, limits)).toMatchObject({ reason: 'unsafe_archive' });
  });
});
