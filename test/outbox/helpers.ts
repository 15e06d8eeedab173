import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { packDirectory } from '../../src/archive/pack.js';
import { tempDir } from '../support/tmp.js';

export type EntryContent = string | Buffer | Record<string, string | Buffer>;

/**
 * Drops an entry into `outbox/<type>/` the way writers must: built under another name on the same
 * filesystem, then renamed in. Returns the sha256 the artifact must arrive with (for a directory:
 * of its deterministic .tar.gz, packed independently here from a copy).
 */
export async function dropEntry(stateDir: string, type: string, name: string, content: EntryContent, options: { mtime?: Date } = {}): Promise<string> {
  const staging = join(stateDir, `staging-${randomBytes(4).toString('hex')}`);
  await writeContent(staging, content);
  const sha256 = await expectedSha256(content);
  if (options.mtime !== undefined) await utimes(staging, options.mtime, options.mtime);
  await mkdir(join(stateDir, 'outbox', type), { recursive: true });
  await rename(staging, join(stateDir, 'outbox', type, name));
  return sha256;
}

export async function writeContent(path: string, content: EntryContent): Promise<void> {
  if (typeof content === 'string' || Buffer.isBuffer(content)) {
    await writeFile(path, content);
    return;
  }
  await mkdir(path, { recursive: true });
  for (const [rel, data] of Object.entries(content)) {
    await mkdir(join(path, rel, '..'), { recursive: true });
    await writeFile(join(path, rel), data);
  }
}

export async function expectedSha256(content: EntryContent): Promise<string> {
  if (typeof content === 'string' || Buffer.isBuffer(content)) return createHash('sha256').update(content).digest('hex');
  const dir = await tempDir('outbox-expected-');
  await writeContent(join(dir, 'tree'), content);
  return (await packDirectory(join(dir, 'tree'), join(dir, 'tree.tar.gz'))).sha256;
}

async function names(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

/** Visible (pending) entries per type directory. */
export async function pending(stateDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const top of await names(join(stateDir, 'outbox'))) {
    if (top.startsWith('.')) continue;
    for (const name of await names(join(stateDir, 'outbox', top))) if (!name.startsWith('.')) out.push(`${top}/${name}`);
  }
  return out;
}

/** What must never pile up: packing temps, packed archives, trash, half-done rejections, dot-temps. */
export async function leftovers(stateDir: string): Promise<string[]> {
  const outbox = join(stateDir, 'outbox');
  const out: string[] = [];
  for (const name of await names(join(outbox, '.packed'))) out.push(`.packed/${name}`);
  for (const name of await names(join(outbox, '.trash'))) out.push(`.trash/${name}`);
  for (const name of await names(join(outbox, '.rejected'))) if (name.startsWith('.')) out.push(`.rejected/${name}`);
  for (const top of await names(outbox)) {
    if (top.startsWith('.')) continue;
    for (const name of await names(join(outbox, top))) if (name.startsWith('.')) out.push(`${top}/${name}`);
  }
  return out;
}

export interface RejectedOnDisk {
  name: string;
  files: string[];
  reason: Record<string, unknown>;
}

export async function rejected(stateDir: string): Promise<RejectedOnDisk[]> {
  const dir = join(stateDir, 'outbox', '.rejected');
  const out: RejectedOnDisk[] = [];
  for (const name of await names(dir)) {
    if (name.startsWith('.')) continue;
    const reason = JSON.parse(await readFile(join(dir, name, 'reason.json'), 'utf8')) as Record<string, unknown>;
    out.push({ name, files: await names(join(dir, name)), reason });
  }
  return out;
}

/** A promise that never settles: awaiting it freezes a job in place, as a kill would. */
export const never = (): Promise<never> => new Promise<never>(() => undefined);
