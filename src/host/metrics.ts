import { statfs } from 'node:fs/promises';
import os from 'node:os';
import si from 'systeminformation';
import type { HostMetrics } from '../api/types.js';
import { withTimeout } from './with-timeout.js';

/** Each probe gets this long; a heartbeat goes out with fallback figures rather than late. */
const PROBE_TIMEOUT_MS = 1_000;

/**
 * MemAvailable (what the kernel says can be allocated without swapping); os.freemem() counts page
 * cache as used and reads near zero on a busy host, so it is only the fallback.
 */
async function memory(): Promise<{ total: number; available: number }> {
  return withTimeout(
    si.mem().then((m) => ({ total: m.total, available: m.available })),
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
