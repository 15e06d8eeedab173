import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ARTIFACT_TYPES } from '../../api/types.js';
import type { StateLayout } from '../../state/layout.js';
import { fsyncDirectory, writeFileAtomic } from '../../util/atomic-write.js';
import type { OutboxEntry } from './entries.js';
import type { Rejection } from './policy.js';

/**
 * The outbox's moves on disk. Each is built from renames so a kill at any instant leaves the entry
 * either pending (and uploaded again, harmlessly: the server deduplicates) or finished, never half
 * of each; leftovers of an interrupted move are finished or removed by cleanOnStart().
 */

/** Prefix of the dot-names `byteor-agent upload` and `snapshot` copy into before their rename. */
export const PLACE_TEMP_PREFIX = '.byteor-upload-';
/** A placing temp older than this is abandoned even if its pid is (reused and) alive. */
const PLACE_TEMP_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const REJECT_TEMP_PREFIX = '.tmp-';
export const REASON_FILE = 'reason.json';

const hex = (): string => randomBytes(6).toString('hex');

export async function ensureOutboxDirs(layout: StateLayout): Promise<void> {
  for (const type of ARTIFACT_TYPES) await mkdir(layout.outboxTypeDir(type), { recursive: true, mode: 0o700 });
  for (const dir of [layout.outboxPackedDir, layout.outboxTrashDir, layout.rejectedDir]) await mkdir(dir, { recursive: true, mode: 0o700 });
}

async function children(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else (e.g. a root `upload` seen by the agent user).
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid in a placing temp's name, `.byteor-upload-<pid>-<random>`. */
export function placeTempPid(name: string): number | undefined {
  const match = new RegExp(`^${PLACE_TEMP_PREFIX.replace('.', '\\.')}(\\d+)-`).exec(name);
  return match === null ? undefined : Number(match[1]);
}

export interface StartupCleanup {
  /** Interrupted rejections finished (the entry had already left the outbox). */
  rejectsFinished: number;
  /** Leftovers removed: packing temps, packed cache, half-deleted entries, abandoned placing temps. */
  removed: number;
}

/**
 * Run once before the first scan. The packed cache is dropped whole: an entry removed just before a
 * crash could come back under the same name, and its old archive must not be sent for it.
 */
export async function cleanOnStart(layout: StateLayout, now: number): Promise<StartupCleanup> {
  let removed = 0;
  for (const dir of [layout.outboxPackedDir, layout.outboxTrashDir]) {
    for (const name of await children(dir)) {
      await rm(join(dir, name), { recursive: true, force: true });
      removed += 1;
    }
  }
  for (const top of await children(layout.outboxDir)) {
    if (top.startsWith('.')) continue;
    for (const name of await children(join(layout.outboxDir, top))) {
      const pid = placeTempPid(name);
      if (pid === undefined) continue;
      const path = join(layout.outboxDir, top, name);
      const info = await lstat(path).catch(() => undefined);
      if (info === undefined) continue;
      if (!isProcessAlive(pid) || now - info.mtimeMs > PLACE_TEMP_MAX_AGE_MS) {
        await rm(path, { recursive: true, force: true });
        removed += 1;
      }
    }
  }
  let rejectsFinished = 0;
  for (const name of await children(layout.rejectedDir)) {
    if (!name.startsWith(REJECT_TEMP_PREFIX)) continue;
    const temp = join(layout.rejectedDir, name);
    const artifact = (await children(temp)).find((child) => child !== REASON_FILE && !child.startsWith('.'));
    if (artifact === undefined) {
      // Killed before the entry moved: it is still pending in the outbox and will be judged again.
      await rm(temp, { recursive: true, force: true });
      removed += 1;
    } else {
      await finishRejection(layout, temp, await rejectedName(temp, artifact));
      rejectsFinished += 1;
    }
  }
  return { rejectsFinished, removed };
}

async function rejectedName(temp: string, fallback: string): Promise<string> {
  try {
    const parsed = JSON.parse(await readFile(join(temp, REASON_FILE), 'utf8')) as { name?: unknown };
    if (typeof parsed.name === 'string' && parsed.name !== '') return parsed.name;
  } catch {
    // reason.json is written before the entry moves in, so this is only a hand-edited leftover.
  }
  return fallback;
}

/** Renames a complete rejection into place under a free name: `name`, `name~2`, `name~3`, ... */
async function finishRejection(layout: StateLayout, temp: string, name: string): Promise<string> {
  for (let n = 1; n < 10_000; n += 1) {
    const candidate = n === 1 ? name : `${name}~${n}`;
    try {
      await rename(temp, join(layout.rejectedDir, candidate));
      await fsyncDirectory(layout.rejectedDir);
      return candidate;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR' && code !== 'EISDIR') throw err;
    }
  }
  throw new Error(`no free name for a rejected entry ${name} in ${layout.rejectedDir}`);
}

/** What an artifact is called inside its .rejected/<name>/ directory. */
export const artifactNameInRejected = (name: string): string => (name === REASON_FILE ? `artifact-${name}` : name);

export interface RejectFacts {
  sha256?: string | undefined;
  size?: number | undefined;
}

/**
 * Moves an entry to .rejected/<name>/ beside a reason.json (the layout `status` and the heartbeat
 * counts read). Order: reason.json into a dot-temp directory, the entry into it, the directory
 * into place; cleanOnStart() finishes or undoes each step after a kill.
 */
export async function rejectEntry(
  layout: StateLayout,
  entry: OutboxEntry,
  rejection: Rejection,
  facts: RejectFacts,
  now: number,
  afterMove?: () => void | Promise<void>,
): Promise<string> {
  const temp = join(layout.rejectedDir, `${REJECT_TEMP_PREFIX}${hex()}`);
  await mkdir(temp, { recursive: true, mode: 0o700 });
  const artifact = artifactNameInRejected(entry.name);
  const reason = {
    reason: rejection.reason,
    code: rejection.code,
    // '' is an entry placed directly in outbox/, outside any type directory.
    type: entry.type === '' ? 'none' : entry.type,
    name: entry.name,
    artifact,
    rejected_at: new Date(now).toISOString(),
    kind: entry.kind,
    size_bytes: facts.size ?? (entry.kind === 'file' ? entry.size : null),
    sha256: facts.sha256 ?? null,
    status: rejection.status ?? null,
    server_code: rejection.serverCode ?? null,
    request_id: rejection.requestId ?? null,
  };
  try {
    await writeFileAtomic(join(temp, REASON_FILE), `${JSON.stringify(reason, null, 2)}\n`, { mode: 0o600 });
    await rename(entry.path, join(temp, artifact));
  } catch (err) {
    await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
  await fsyncDirectory(dirname(entry.path));
  await afterMove?.();
  return finishRejection(layout, temp, entry.name);
}

/**
 * Removes an uploaded entry: renamed into .trash/ first (one atomic step: it is no longer pending),
 * then deleted. A kill mid-delete leaves a partial tree in .trash/, never a partial entry that
 * would be packed and uploaded as a different artifact.
 */
export async function removeEntry(layout: StateLayout, entry: OutboxEntry, afterRename?: () => void | Promise<void>): Promise<void> {
  const trash = join(layout.outboxTrashDir, hex());
  await mkdir(layout.outboxTrashDir, { recursive: true, mode: 0o700 });
  await rename(entry.path, trash);
  await fsyncDirectory(dirname(entry.path));
  await afterRename?.();
  await rm(trash, { recursive: true, force: true });
}

/** Removes a file if it exists. */
export async function unlinkQuietly(path: string | undefined): Promise<void> {
  if (path === undefined) return;
  await unlink(path).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  });
}
