import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { outboxCounts, rejectedEntries } from '../../src/agent/outbox-counts.js';
import { nameCandidate } from '../../src/agent/outbox/place.js';
import { StateLayout } from '../../src/state/layout.js';
import { tempDir } from '../support/tmp.js';
import { dropEntry } from './helpers.js';

async function reject(layout: StateLayout, name: string, at: string): Promise<void> {
  await mkdir(join(layout.rejectedDir, name), { recursive: true });
  await writeFile(join(layout.rejectedDir, name, 'reason.json'), JSON.stringify({ reason: `why ${name}`, type: 'diagnostic', rejected_at: at }));
}

describe('outbox counts for heartbeats and status', () => {
  it('counts pending entries and their bytes, ignoring dot-names and the agent’s own areas', async () => {
    const root = await tempDir();
    const layout = new StateLayout(root);
    await dropEntry(root, 'diagnostic', 'a.txt', '12345');
    await dropEntry(root, 'incident_bundle', 'dir', { 'x/y.txt': '1234567890' });
    await writeFile(join(root, 'outbox', 'diagnostic', '.being-written'), 'x'.repeat(1000));
    await mkdir(join(root, 'outbox', '.packed'), { recursive: true });
    await writeFile(join(root, 'outbox', '.packed', 'cache.tar.gz'), 'x'.repeat(1000));
    await reject(layout, 'old', '2026-12-04T10:00:00.000Z');
    expect(await outboxCounts(layout)).toEqual({ pending: 2, pending_bytes: 15, rejected: 1 });
  });

  it('lists the newest rejected entries last, by rejection time', async () => {
    const layout = new StateLayout(await tempDir());
    await reject(layout, 'b-second', '2026-12-04T11:00:00.000Z');
    await reject(layout, 'a-third', '2026-12-04T12:00:00.000Z');
    await reject(layout, 'c-first', '2026-12-04T10:00:00.000Z');
    expect((await rejectedEntries(layout)).map((e) => e.name)).toEqual(['c-first', 'b-second', 'a-third']);
    expect((await rejectedEntries(layout, 2)).map((e) => [e.name, e.reason])).toEqual([
      ['b-second', 'why b-second'],
      ['a-third', 'why a-third'],
    ]);
  });
});

describe('names for placed entries', () => {
  it('numbers a taken name before its extension', () => {
    expect([1, 2, 3].map((n) => nameCandidate('incident.tar.gz', n))).toEqual(['incident.tar.gz', 'incident-2.tar.gz', 'incident-3.tar.gz']);
    expect(nameCandidate('capture', 2)).toBe('capture-2');
    expect(nameCandidate('dmesg.txt', 2)).toBe('dmesg-2.txt');
  });
});
