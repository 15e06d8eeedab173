import { randomBytes } from 'node:crypto';
import { lstat, readdir, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { STAGING_PREFIX } from '../../archive/extract.js';
import type { StateLayout } from '../../state/layout.js';
import { fsyncDirectory } from '../../util/atomic-write.js';

/**
 * The `current` symlink and the bundle cache (DESIGN.md "The state directory"). `current` is
 * relative (`bundles/<sha256>`), so the state directory can be moved, and is only ever replaced by
 * rename(2) of a fully made new link: at any instant it names either the old or the new bundle.
 */

const LINK_TEMP_PREFIX = '.current.tmp-';
const SHA256 = /^[0-9a-f]{64}$/;

export function linkTargetFor(sha256: string): string {
  return join('bundles', sha256);
}

/** The bundle `current` names, or undefined (no link, not a link, or not one of ours). */
export async function readCurrent(layout: StateLayout): Promise<string | undefined> {
  let target: string;
  try {
    target = await readlink(layout.currentLink);
  } catch {
    return undefined;
  }
  const sha = basename(target);
  return dirname(target) === 'bundles' && SHA256.test(sha) ? sha : undefined;
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export type SwapStep = 'link-created' | 'link-swapped';

/**
 * Points `current` at bundles/<sha256>: a new symlink under a temporary name, renamed over the old
 * one (atomic), then the directory is fsynced so the swap survives a power loss. `step` runs after
 * each step (tests inject crashes there).
 */
export async function swapCurrent(layout: StateLayout, sha256: string, step: (name: SwapStep) => Promise<void> = async () => undefined): Promise<void> {
  const temp = join(layout.root, `${LINK_TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
  await symlink(linkTargetFor(sha256), temp);
  try {
    await step('link-created');
    await rename(temp, layout.currentLink);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
  await step('link-swapped');
  await fsyncDirectory(layout.root);
}

export interface PruneResult {
  bundles: string[];
  downloads: string[];
}

/**
 * Deletes what no deployment needs: bundles other than `keepBundles`, leftover staging
 * directories and temporary links from an interrupted run, and downloads other than `keepDownloads`.
 * Never touches what `current` points to, whatever the caller passed.
 */
export async function prune(layout: StateLayout, keepBundles: Iterable<string | undefined>, keepDownloads: Iterable<string | undefined>): Promise<PruneResult> {
  const removed: PruneResult = { bundles: [], downloads: [] };
  const keep = new Set([...keepBundles].filter((s): s is string => s !== undefined));
  const linked = await readCurrent(layout);
  if (linked !== undefined) keep.add(linked);
  for (const name of await listDir(layout.bundlesDir)) {
    if (keep.has(name)) continue;
    if (!SHA256.test(name) && !name.startsWith(STAGING_PREFIX)) continue;
    await rm(join(layout.bundlesDir, name), { recursive: true, force: true });
    removed.bundles.push(name);
  }
  const keepFiles = new Set([...keepDownloads].filter((s): s is string => s !== undefined).map(downloadName));
  for (const name of await listDir(layout.downloadsDir)) {
    if (keepFiles.has(name)) continue;
    await rm(join(layout.downloadsDir, name), { recursive: true, force: true });
    removed.downloads.push(name);
  }
  for (const name of await listDir(layout.root)) {
    if (!name.startsWith(LINK_TEMP_PREFIX)) continue;
    const path = join(layout.root, name);
    if ((await lstat(path)).isSymbolicLink()) await rm(path, { force: true });
  }
  return removed;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export function downloadName(sha256: string): string {
  return `${sha256}.tar.gz.part`;
}

export function downloadPath(layout: StateLayout, sha256: string): string {
  return join(layout.downloadsDir, downloadName(sha256));
}
