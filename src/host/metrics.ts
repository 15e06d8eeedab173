import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import type { HostMetrics } from '../api/types.js';
import { withTimeout } from './with-timeout.js';

/** Each probe gets this long; a heartbeat goes out with fallback figures rather than late. */
const PROBE_TIMEOUT_MS = 1_000;

/**
 * MemAvailable (what the kernel says can be allocated without swapping); os.freemem() counts page
 * cache as used and reads near zero on a busy host, so it is only the fallback. Read from
 * /proc/meminfo directly, as systeminformation's mem() does on Linux: loading that library just
 * for this kept ~10 MB resident in every running agent (scripts/bench/footprint.ts).
 */
async function memory(): Promise<{ total: number; available: number }> {
  return withTimeout(
    readFile('/proc/meminfo', 'utf8').then(parseMeminfo),
    PROBE_TIMEOUT_MS,
    () => ({ total: os.totalmem(), available: os.freemem() }),
  );
}

/** Free bytes on the filesystem holding `path` (the state directory), as an unprivileged user sees it. */
export async function diskFreeBytes(path: string): Promise<number> {
  return withTimeout(
    statfs(path).then((s) => s.bavail * s.bsize),
    PROBE_TIMEOUT_MS,
    () => 0,
  );
}

/** The heartbeat's `host` object (API.md §2); only cheap, non-blocking calls. */
export async function hostMetrics(stateDir: string): Promise<HostMetrics> {
  const [mem, diskFree] = await Promise.all([memory(), diskFreeBytes(stateDir)]);
  return {
    hostname: os.hostname(),
    uptime_seconds: Math.round(os.uptime()),
    load1: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
    cpu_count: os.availableParallelism(),
    mem_total_bytes: mem.total,
    mem_available_bytes: mem.available,
    disk_free_bytes: diskFree,
  };
}

/** MemTotal and MemAvailable from /proc/meminfo (kB), as systeminformation's mem() reads them. */
export function parseMeminfo(text: string): { total: number; available: number } {
  const kb = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (match?.[1] === undefined) throw new Error(`/proc/meminfo has no ${field}`);
    return Number(match[1]) * 1024;
  };
  return { total: kb('MemTotal'), available: kb('MemAvailable') };
}
