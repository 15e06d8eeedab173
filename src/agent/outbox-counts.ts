import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACT_TYPES } from '../api/types.js';
import type { StateLayout } from '../state/layout.js';
import type { RejectedEntry } from '../state/status-file.js';
import type { OutboxCounts } from './jobs/heartbeat.js';

async function sizeOf(path: string): Promise<number> {
  const info = await lstat(path);
  if (!info.isDirectory()) return info.isFile() ? info.size : 0;
  let total = 0;
  for (const entry of await readdir(path)) total += await sizeOf(join(path, entry)).catch(() => 0);
  return total;
}

async function listVisible(dir: string): Promise<string[]> {
  try {
    // Dot-names are in-progress writes (temp files, packing) or our own bookkeeping.
    return (await readdir(dir)).filter((name) => !name.startsWith('.'));
  } catch {
    return [];
  }
}

/** Pending entries and their bytes per outbox type, and how many were rejected for good. */
export async function outboxCounts(layout: StateLayout): Promise<OutboxCounts> {
  let pending = 0;
  let pendingBytes = 0;
  for (const type of ARTIFACT_TYPES) {
    const dir = layout.outboxTypeDir(type);
    for (const name of await listVisible(dir)) {
      pending += 1;
      pendingBytes += await sizeOf(join(dir, name)).catch(() => 0);
    }
  }
  const rejected = (await listVisible(layout.rejectedDir)).length;
  return { pending, pending_bytes: pendingBytes, rejected };
}

/** Rejected entries with their reason.json, the newest `limit` of them, newest last, for `status`. */
export async function rejectedEntries(layout: StateLayout, limit = 20): Promise<RejectedEntry[]> {
  const out: RejectedEntry[] = [];
  for (const name of await listVisible(layout.rejectedDir)) {
    let reason = 'unknown';
    let type = 'unknown';
    let rejectedAt: string | null = null;
    try {
      const parsed = JSON.parse(await readFile(join(layout.rejectedDir, name, 'reason.json'), 'utf8')) as Record<string, unknown>;
      if (typeof parsed.reason === 'string') reason = parsed.reason;
      if (typeof parsed.type === 'string') type = parsed.type;
      if (typeof parsed.rejected_at === 'string') rejectedAt = parsed.rejected_at;
    } catch {
      // An entry without a readable reason is still listed.
    }
    out.push({ name, type, reason, rejected_at: rejectedAt });
  }
  // By rejection time (ISO strings sort as times; unknown first), then name.
  out.sort((a, b) => (a.rejected_at ?? '').localeCompare(b.rejected_at ?? '') || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return out.slice(-limit);
}
