import { describe, expect, it } from 'vitest';
import { hostMetrics, parseMeminfo } from '../../src/host/metrics.js';
import { tempDir } from '../support/tmp.js';

const SAMPLE = `MemTotal:        8041892 kB
MemFree:          312440 kB
MemAvailable:    5123456 kB
Buffers:          204800 kB
`;

describe('host metrics', () => {
  it('reads MemTotal and MemAvailable (not MemFree) from /proc/meminfo, in bytes', () => {
    expect(parseMeminfo(SAMPLE)).toEqual({ total: 8041892 * 1024, available: 5123456 * 1024 });
  });

  it('refuses a meminfo without MemAvailable, so the caller falls back', () => {
    expect(() => parseMeminfo('MemTotal: 1 kB\nMemFree: 1 kB\n')).toThrow(/no MemAvailable/);
  });

  it('fills the heartbeat host object with plausible figures', async () => {
    const host = await hostMetrics(await tempDir());
    expect(host.mem_total_bytes).toBeGreaterThan(0);
    expect(host.mem_available_bytes).toBeGreaterThan(0);
    expect(host.mem_available_bytes).toBeLessThanOrEqual(host.mem_total_bytes);
    expect(host.disk_free_bytes).toBeGreaterThan(0);
  });
});
