import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, cp, lchown, link, lstat, mkdir, open, readdir, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ArtifactType } from '../../api/types.js';
import type { StateLayout } from '../../state/layout.js';
import { fsyncDirectory, fsyncPath } from '../../util/atomic-write.js';
import { PLACE_TEMP_PREFIX } from './disk.js';

/**
 * Putting an entry into the outbox the way writers must (DESIGN.md "The state directory"): the
 * content is completed under a dot-name in the type directory (which the agent ignores), made
 * durable, handed to the agent's user, and only then renamed to a visible name: one atomic step.
 */

export interface Placed {
  /** Where the entry now is. */
  path: string;
  name: string;
  /** Whether the source itself was moved (else it was copied and is untouched). */
  moved: boolean;
}

/** A visible, unused-looking name: no leading dots (those are ignored), never empty. */
export function entryNameFor(source: string): string {
  const name = basename(source).replace(/^\.+/, '');
  return name === '' ? 'artifact' : name;
}

/** `name`, then `name-2`, `name-3`, ... with the suffix before the extension (`x-2.tar.gz`). */
export function nameCandidate(name: string, n: number): string {
  if (n <= 1) return name;
  const ext = /(\.tar\.[A-Za-z0-9]+|\.[A-Za-z0-9]{1,8})$/.exec(name)?.[0] ?? '';
  const stem = name.slice(0, name.length - ext.length);
  return stem === '' ? `${name}-${n}` : `${stem}-${n}${ext}`;
}

const tempName = (): string => `${PLACE_TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`;

/** Owner of the state directory: the agent's user, who must be able to read and remove entries. */
async function agentOwner(layout: StateLayout): Promise<{ uid: number; gid: number }> {
  const info = await stat(layout.root);
  return { uid: info.uid, gid: info.gid };
}

/** The type directory, created (and given to the agent's user) when the agent has not yet. */
async function typeDir(layout: StateLayout, type: ArtifactType, owner: { uid: number; gid: number }): Promise<string> {
  const dir = layout.outboxTypeDir(type);
  for (const path of [layout.outboxDir, dir]) {
    try {
      await mkdir(path, { mode: 0o700 });
      if (process.getuid?.() === 0) await lchown(path, owner.uid, owner.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return dir;
}

/** fsyncs every file and directory under `path`, and fixes what the agent's user must be able to do. */
async function settleTree(path: string, owner: { uid: number; gid: number }): Promise<void> {
  const info = await lstat(path);
  const asRoot = process.getuid?.() === 0 && owner.uid !== 0;
  if (asRoot) await lchown(path, owner.uid, owner.gid);
  if (info.isSymbolicLink()) return;
  // The owner must be able to read files and list and delete within directories.
  const need = info.isDirectory() ? 0o700 : 0o600;
  if ((info.mode & need) !== need) await chmod(path, (info.mode & 0o7777) | need);
  if (info.isDirectory()) {
    for (const child of await readdir(path)) await settleTree(join(path, child), owner);
  }
  await fsyncPath(path);
}

/** Renames (or links, for files: never replacing anything) `temp` to the first free name. */
async function publish(temp: string, dir: string, name: string, isDir: boolean): Promise<string> {
  for (let n = 1; n < 10_000; n += 1) {
    const candidate = nameCandidate(name, n);
    const target = join(dir, candidate);
    if (!isDir) {
      try {
        await link(temp, target);
        await unlink(temp);
        return candidate;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') continue;
        // Filesystems without hard links fall through to check-then-rename.
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw err;
      }
    }
    const exists = await lstat(target).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return false;
        throw err;
      },
    );
    if (exists) continue;
    await rename(temp, target);
    return candidate;
  }
  throw new Error(`no free name for ${name} in ${dir}`);
}

export interface PlaceOptions {
  /** Rename the source in when it is on the same filesystem (falls back to copy + remove). */
  move?: boolean;
  /** Name in the outbox (default: the source's base name without leading dots). */
  name?: string;
}

/**
 * Places a file or directory into outbox/<type>/. By default it is copied, so the caller's file is
 * untouched; with `move` it is renamed when possible. Its mtime (the artifact's captured_at, and
 * the upload order) is the source's.
 */
export async function placeInOutbox(layout: StateLayout, type: ArtifactType, source: string, options: PlaceOptions = {}): Promise<Placed> {
  const owner = await agentOwner(layout);
  const dir = await typeDir(layout, type, owner);
  const info = await stat(source);
  const temp = join(dir, tempName());
  let moved = false;
  try {
    if (options.move === true) {
      try {
        await rename(source, temp);
        moved = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      }
    }
    if (!moved) {
      if (info.isDirectory()) await cp(source, temp, { recursive: true, errorOnExist: true, force: false, verbatimSymlinks: true, preserveTimestamps: true });
      else await copyFile(source, temp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    }
    await settleTree(temp, owner);
    await utimes(temp, info.atime, info.mtime);
    const name = await publish(temp, dir, options.name ?? entryNameFor(source), info.isDirectory());
    await fsyncDirectory(dir);
    if (moved) await fsyncDirectory(dirname(source));
    // Moving across filesystems is a copy; the source goes only once the copy is in place.
    else if (options.move === true) await rm(source, { recursive: true, force: true });
    return { path: join(dir, name), name, moved: options.move === true };
  } catch (err) {
    if (moved) await rename(temp, source).catch(() => undefined);
    else await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/** Writes `data` as a new entry (for `byteor-agent snapshot`), with the same atomic steps. */
export async function placeBytes(layout: StateLayout, type: ArtifactType, name: string, data: string | Uint8Array): Promise<Placed> {
  const owner = await agentOwner(layout);
  const dir = await typeDir(layout, type, owner);
  const temp = join(dir, tempName());
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(data);
    } finally {
      await handle.close();
    }
    await settleTree(temp, owner);
    const placed = await publish(temp, dir, name, false);
    await fsyncDirectory(dir);
    return { path: join(dir, placed), name: placed, moved: false };
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
}
