import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ALL_RUNTIME_SCOPES } from '../control-plane/agents.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { judge, renderStatus } from '../../src/commands/status.js';
import type { StatusDocument } from '../../src/state/status-file.js';
import { startHarness, type Harness, type HarnessOptions } from '../support/runtime-harness.js';
import { VirtualClock } from '../support/virtual-clock.js';
import { dropEntry, leftovers, pending, rejected } from './helpers.js';

const clock = new VirtualClock();
const { cp, baseUrl, server } = setupControlPlane({ now: () => clock.now() });

const SEC = 1_000;
const MIN = 60_000;

interface Answer {
  at: number;
  status: number;
  retryAfterMs: number | undefined;
}
let answers: Answer[] = [];

beforeEach(() => {
  answers = [];
  server.events.on('response:mocked', ({ request, response }) => {
    if (!request.url.endsWith('/artifacts')) return;
    const retryAfter = response.headers.get('retry-after');
    answers.push({ at: clock.now(), status: response.status, retryAfterMs: retryAfter === null ? undefined : Number(retryAfter) * 1000 });
  });
});

const running: Harness[] = [];
afterEach(async () => {
  server.events.removeAllListeners();
  for (const h of running.splice(0)) {
    await h.runtime.stop();
    expect(h.logs.text()).not.toContain(h.apiKey);
  }
});

async function harness(options: Partial<HarnessOptions> & { outbox?: NonNullable<HarnessOptions['extra']>['outbox'] } = {}): Promise<Harness> {
  const { outbox, ...rest } = options;
  const h = await startHarness({ cp, baseUrl, clock, ...rest, extra: { outbox: { watch: false, ...(outbox === false ? {} : outbox) }, ...rest.extra } });
  running.push(h);
  return h;
}

const status = async (h: Harness): Promise<StatusDocument> => (await h.readJson('status.json')) as unknown as StatusDocument;
const artifactRequests = (): number[] => cp.requestsTo('artifacts').map((r) => r.at);

describe('outbox: delivery', () => {
  it('uploads files as they are and directories as deterministic .tar.gz, oldest first, then empties the outbox', async () => {
    const h = await harness();
    const newer = await dropEntry(h.stateDir, 'incident_bundle', 'incident-b', { 'meta.json': '{"trigger":"watchdog"}', 'logs/app.log': 'boom\n' }, { mtime: new Date('2026-12-04T11:00:00Z') });
    const older = await dropEntry(h.stateDir, 'diagnostic', 'dmesg.txt', 'kernel says hi\n', { mtime: new Date('2026-12-04T10:00:00Z') });
    const gz = await dropEntry(h.stateDir, 'snapshot', 'snap.tgz', Buffer.from([0x1f, 0x8b, 8, 0]), { mtime: new Date('2026-12-04T10:30:00Z') });
    h.runtime.start();
    await h.advance(11 * SEC);

    expect(cp.artifacts.map((a) => [a.type, a.filename, a.sha256, a.contentType])).toEqual([
      ['diagnostic', 'dmesg.txt', older, 'application/octet-stream'],
      ['snapshot', 'snap.tgz', gz, 'application/gzip'],
      ['incident_bundle', 'incident-b.tar.gz', newer, 'application/gzip'],
    ]);
    expect(cp.artifacts[0]).toMatchObject({ sizeBytes: 15, capturedAt: '2026-12-04T10:00:00.000Z', labels: {} });
    expect(cp.requestsTo('artifacts').map((r) => r.status)).toEqual([201, 201, 201]);
    expect(await pending(h.stateDir)).toEqual([]);
    expect(await leftovers(h.stateDir)).toEqual([]);
    expect(h.logs.records.filter((r) => String(r.msg).includes('uploaded as art_'))).toHaveLength(3);
  });

  it('treats 200 deduplicated as done too', async () => {
    const h = await harness();
    await dropEntry(h.stateDir, 'snapshot', 'a.json', '{"same":true}', { mtime: new Date(1_000) });
    await dropEntry(h.stateDir, 'snapshot', 'b.json', '{"same":true}', { mtime: new Date(2_000) });
    h.runtime.start();
    await h.advance(11 * SEC);
    expect(cp.requestsTo('artifacts').map((r) => r.status)).toEqual([201, 200]);
    expect(cp.artifacts).toHaveLength(1);
    expect(cp.artifacts[0]!.dedupCount).toBe(1);
    expect(await pending(h.stateDir)).toEqual([]);
  });

  it('picks up an entry added while an upload runs in the same run', async () => {
    let added = false;
    const h: Harness = await harness({
      outbox: {
        hooks: {
          stage: async (stage, entry) => {
            if (stage === 'prepared' && entry.name === 'first.txt' && !added) {
              added = true;
              await dropEntry(h.stateDir, 'diagnostic', 'second.txt', 'second\n');
            }
          },
        },
      },
    });
    await dropEntry(h.stateDir, 'diagnostic', 'first.txt', 'first\n');
    h.runtime.start();
    await h.advance(11 * SEC);
    expect(cp.artifacts.map((a) => a.filename)).toEqual(['first.txt', 'second.txt']);
    const [first, second] = artifactRequests();
    expect(second).toBe(first);
    expect(await pending(h.stateDir)).toEqual([]);
  });

  it('never picks up a file still being written under a dot-name; once renamed in, it goes up whole', async () => {
    const h = await harness();
    const dir = join(h.stateDir, 'outbox', 'incident_bundle');
    await mkdir(dir, { recursive: true });
    const writing = await open(join(dir, '.incident-7.partial'), 'w');
    await writing.write('part one\n');
    await mkdir(join(dir, '.capture-8.tmp'));
    await writeFile(join(dir, '.capture-8.tmp', 'core'), 'partial core');
    h.runtime.start();
    await h.advance(35 * SEC);
    expect(cp.requestsTo('artifacts')).toHaveLength(0);
    expect(await rejected(h.stateDir)).toEqual([]);

    await writing.write('part two\n');
    await writing.close();
    await rename(join(dir, '.incident-7.partial'), join(dir, 'incident-7.log'));
    await h.advance(11 * SEC);
    expect(cp.artifacts.map((a) => [a.filename, a.sizeBytes, a.sha256])).toEqual([['incident-7.log', 18, createHash('sha256').update('part one\npart two\n').digest('hex')]]);
    // The other writer is still busy: its directory stays untouched.
    expect(await readFile(join(dir, '.capture-8.tmp', 'core'), 'utf8')).toBe('partial core');
  });

  it('runs soon after a filesystem notification instead of waiting for the next scan', async () => {
    const h = await harness({ outbox: { watch: true } });
    h.runtime.start();
    await h.advance(11 * SEC);
    const nextScan = h.runtime.scheduler.nextRuns().outbox!;
    await dropEntry(h.stateDir, 'diagnostic', 'noticed.txt', 'quick\n');
    // inotify delivers asynchronously: wait (bounded) for the trigger to arm a run.
    await vi.waitFor(() => expect(h.runtime.scheduler.nextRuns().outbox).toBeLessThan(nextScan), { timeout: 5_000, interval: 20 });
    await h.advance(300);
    expect(cp.artifacts.map((a) => a.filename)).toEqual(['noticed.txt']);
    expect(artifactRequests()[0]).toBeLessThan(nextScan);
  });
});

describe('outbox: refusals', () => {
  it('moves an artifact refused with 413 to .rejected/ with a reason, and status lists it', async () => {
    cp.fault('artifacts', { status: 413, body: { error: { code: 'payload_too_large', message: 'too big for us' } } });
    const h = await harness();
    await dropEntry(h.stateDir, 'incident_bundle', 'huge', { 'core.bin': 'pretend this is large' });
    h.runtime.start();
    await h.advance(11 * SEC);

    expect(cp.requestsTo('artifacts').map((r) => r.status)).toEqual([413]);
    expect(await pending(h.stateDir)).toEqual([]);
    const [entry] = await rejected(h.stateDir);
    expect(entry).toMatchObject({ name: 'huge', files: ['huge', 'reason.json'] });
    expect(entry!.reason).toMatchObject({ code: 'too_large', type: 'incident_bundle', status: 413, server_code: 'payload_too_large', kind: 'dir' });
    expect(String(entry!.reason.reason)).toContain('too big for us');
    expect(await readFile(join(h.stateDir, 'outbox', '.rejected', 'huge', 'huge', 'core.bin'), 'utf8')).toBe('pretend this is large');
    expect(await leftovers(h.stateDir)).toEqual([]);

    await h.advance(31 * SEC);
    const doc = await status(h);
    expect(doc.outbox).toMatchObject({ pending: 0, rejected: 1, rejected_entries: [{ name: 'huge', type: 'incident_bundle', reason: expect.stringContaining('413') }] });
    expect(renderStatus(doc, judge({ kind: 'ok', doc }, { agentId: h.agentId, stateDir: h.stateDir }, clock.now()), clock.now())).toMatch(/rejected huge \(incident_bundle\): the control plane refused it as too large \(413: too big for us\)/);
    expect(cp.heartbeatsOf(h.agentId).at(-1)!.body.outbox).toEqual({ pending: 0, pending_bytes: 0, rejected: 1 });
    // A rejection is never retried.
    expect(cp.requestsTo('artifacts')).toHaveLength(1);
  });

  it('rejects a type the control plane does not know (400 unknown_type)', async () => {
    cp.fault('artifacts', { status: 400, body: { error: { code: 'unknown_type', message: 'no such type' } } });
    const h = await harness();
    await dropEntry(h.stateDir, 'diagnostic', 'x.txt', 'x');
    h.runtime.start();
    await h.advance(11 * SEC);
    expect((await rejected(h.stateDir)).map((r) => [r.name, r.reason.code, r.reason.status])).toEqual([['x.txt', 'unknown_type', 400]]);
  });

  it('re-hashes once on a hash mismatch and sends again; a mismatch that persists is rejected', async () => {
    const mismatch = { status: 400, body: { error: { code: 'hash_mismatch', message: 'bytes differ' } } };
    cp.fault('artifacts', { ...mismatch, times: 1 });
    const h = await harness();
    await dropEntry(h.stateDir, 'diagnostic', 'once.txt', 'flaky proxy', { mtime: new Date(1_000) });
    h.runtime.start();
    await h.advance(11 * SEC);
    expect(cp.requestsTo('artifacts').map((r) => r.status)).toEqual([400, 201]);
    expect(cp.artifacts.map((a) => a.filename)).toEqual(['once.txt']);

    cp.fault('artifacts', { ...mismatch, times: 2 });
    await dropEntry(h.stateDir, 'diagnostic', 'always.txt', 'broken');
    await h.advance(11 * SEC);
    expect(cp.requestsTo('artifacts').map((r) => r.status)).toEqual([400, 201, 400, 400]);
    expect((await rejected(h.stateDir)).map((r) => [r.name, r.reason.code])).toEqual([['always.txt', 'hash_mismatch']]);
    expect(await pending(h.stateDir)).toEqual([]);
  });

  it('rejects a 70 MiB file locally, before sending a byte', async () => {
    const h = await harness();
    const dir = join(h.stateDir, 'outbox', 'incident_bundle');
    await mkdir(dir, { recursive: true });
    // Sparse: 70 MiB of apparent size, no disk space, instant.
    await writeFile(join(dir, '.core.tmp'), '');
    await truncate(join(dir, '.core.tmp'), 70 * 1024 * 1024);
    await rename(join(dir, '.core.tmp'), join(dir, 'core.bin'));
    h.runtime.start();
    await h.advance(11 * SEC);

    expect(cp.requestsTo('artifacts')).toHaveLength(0);
    const [entry] = await rejected(h.stateDir);
    expect(entry).toMatchObject({ name: 'core.bin', files: ['core.bin', 'reason.json'] });
    expect(entry!.reason).toMatchObject({ code: 'too_large', size_bytes: 70 * 1024 * 1024, status: null });
    expect(entry!.reason.reason).toBe('the file is 70 MiB (73400320 bytes), over the 64 MiB artifact limit; not sent');
  });

  it('rejects a directory whose archive is over the cap, and entries of unknown types, without sending them', async () => {
    const h = await harness({ outbox: { maxBytes: 4096 } });
    await dropEntry(h.stateDir, 'incident_bundle', 'big-capture', { 'random.bin': randomBytes(20_000) });
    await dropEntry(h.stateDir, 'incidents', 'typo.txt', 'wrong directory');
    h.runtime.start();
    await h.advance(11 * SEC);
    expect(cp.requestsTo('artifacts')).toHaveLength(0);
    expect((await rejected(h.stateDir)).map((r) => [r.name, r.reason.code, r.reason.type])).toEqual([
      ['big-capture', 'too_large', 'incident_bundle'],
      ['typo.txt', 'unknown_type', 'incidents'],
    ]);
    expect(await leftovers(h.stateDir)).toEqual([]);
  });

  it('keeps entries when the request rather than the artifact is refused (404), raising a problem until it works', async () => {
    cp.fault('artifacts', { status: 404, times: Infinity, body: '<html>not found</html>' });
    const h = await harness();
    await dropEntry(h.stateDir, 'diagnostic', 'keep.txt', 'keep me');
    h.runtime.start();
    await h.advance(2 * MIN);
    expect(cp.requestsTo('artifacts').length).toBeGreaterThanOrEqual(2);
    expect(cp.requestsTo('artifacts').every((r) => r.status === 404)).toBe(true);
    expect(await pending(h.stateDir)).toEqual(['diagnostic/keep.txt']);
    expect(await rejected(h.stateDir)).toEqual([]);
    expect((await status(h)).problems.map((p) => p.code)).toContain('outbox_refused');
    cp.clearFaults();
    await h.advance(6 * MIN);
    expect(cp.artifacts.map((a) => a.filename)).toEqual(['keep.txt']);
    expect(await pending(h.stateDir)).toEqual([]);
    expect((await status(h)).problems.map((p) => p.code)).not.toContain('outbox_refused');
  });
});

describe('outbox: pacing', () => {
  it('keeps entries through 503s and dropped connections, backing off, and delivers them', async () => {
    cp.fault('artifacts', { status: 503, times: 2 });
    cp.fault('artifacts', { drop: true, times: 2 });
    const h = await harness();
    await dropEntry(h.stateDir, 'diagnostic', 'a.txt', 'a', { mtime: new Date(1_000) });
    await dropEntry(h.stateDir, 'diagnostic', 'b.txt', 'b', { mtime: new Date(2_000) });
    h.runtime.start();
    await h.advance(12 * SEC);
    expect(await pending(h.stateDir)).toEqual(['diagnostic/a.txt', 'diagnostic/b.txt']);
    await h.advance(5 * MIN);
    expect(cp.requestsTo('artifacts').map((r) => r.status)).toEqual([503, 503, 0, 0, 201, 201]);
    expect(await pending(h.stateDir)).toEqual([]);
    // Only the first failure of the streak is logged at warn.
    expect(h.logs.records.filter((r) => r.level === 'warn' && r.job === 'outbox')).toHaveLength(1);
  });

  it('survives a 429 storm from the budget: nothing is sent before Retry-After, and everything arrives', async () => {
    cp.setArtifactBudget({ limit: 2, windowMs: MIN });
    const h = await harness();
    const expected: string[] = [];
    for (let i = 0; i < 7; i += 1) {
      expected.push(await dropEntry(h.stateDir, 'incident_bundle', `incident-${i}`, { 'n.txt': `capture ${i}\n` }, { mtime: new Date(1_000 * (i + 1)) }));
    }
    h.runtime.start();
    await h.advance(10 * MIN);

    expect(cp.artifacts.map((a) => a.sha256)).toEqual(expected);
    expect(await pending(h.stateDir)).toEqual([]);
    expect(await leftovers(h.stateDir)).toEqual([]);
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(3);
    const times = artifactRequests();
    for (const answer of limited) {
      expect(answer.retryAfterMs).toBeGreaterThan(0);
      // Not just the entry that got the 429: nothing at all goes out before Retry-After.
      const next = times.find((t) => t > answer.at);
      if (next !== undefined) expect(next).toBeGreaterThanOrEqual(answer.at + answer.retryAfterMs!);
    }
    // Retry-After waits are the server pacing us: no error-level noise.
    expect(h.logs.records.filter((r) => r.level === 'error')).toEqual([]);
  });

  it('pauses on 403 with scope_missing on heartbeats, keeps and counts the entries, and resumes once the scope is granted', async () => {
    const h = await harness({ scopes: ALL_RUNTIME_SCOPES.filter((s) => s !== 'agent:artifact_upload') });
    await dropEntry(h.stateDir, 'diagnostic', 'waiting.txt', '0123456789');
    h.runtime.start();
    await h.advance(40 * SEC);

    expect(cp.requestsTo('artifacts').map((r) => r.status)).toEqual([403]);
    expect(await pending(h.stateDir)).toEqual(['diagnostic/waiting.txt']);
    const beat = cp.heartbeatsOf(h.agentId).at(-1)!.body;
    expect(beat.problems).toEqual([{ code: 'scope_missing', message: 'runtime key lacks agent:artifact_upload' }]);
    expect(beat.outbox).toEqual({ pending: 1, pending_bytes: 10, rejected: 0 });
    expect(beat.status).toBe('degraded');

    // New entries wake the job, but a paused outbox stays paused until its 15-minute re-check.
    await dropEntry(h.stateDir, 'diagnostic', 'also-waiting.txt', 'x');
    await h.advance(10 * MIN);
    expect(cp.requestsTo('artifacts')).toHaveLength(1);

    cp.setAgentScopes(h.agentId, [...ALL_RUNTIME_SCOPES]);
    await h.advance(9 * MIN);
    expect(cp.artifacts.map((a) => a.filename)).toEqual(['waiting.txt', 'also-waiting.txt']);
    await h.advance(MIN);
    expect(cp.heartbeatsOf(h.agentId).at(-1)!.body.problems).toEqual([]);
    expect(h.logs.records.filter((r) => r.level === 'error')).toHaveLength(1);
  });
});
