import { spawnSync } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { OutboxStage } from '../../src/agent/outbox/job.js';
import type { StatusDocument } from '../../src/state/status-file.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { startHarness, type Harness } from '../support/runtime-harness.js';
import { tempDir } from '../support/tmp.js';
import { VirtualClock } from '../support/virtual-clock.js';
import { dropEntry, leftovers, never, pending, rejected } from './helpers.js';

const clock = new VirtualClock();
const { cp, baseUrl } = setupControlPlane({ now: () => clock.now() });

const SEC = 1_000;

const running: Harness[] = [];
afterEach(async () => {
  for (const h of running.splice(0)) await h.runtime.stop();
});

const CAPTURE = { 'meta.json': '{"trigger":"oom"}\n', 'logs/app.log': 'x'.repeat(300_000), 'logs/kernel.log': 'oom-killer\n' };

/**
 * Starts an agent whose outbox freezes for good when it reaches `stage`, runs it until it does,
 * then kills it (stops scheduling; the frozen run never resumes, so nothing cleans up after it,
 * exactly as after SIGKILL). Returns the state directory and identity for the restart.
 */
async function killAt(stage: OutboxStage, prepare: (stateDir: string) => Promise<void>): Promise<{ stateDir: string; agent: { agentId: string; apiKey: string } }> {
  const stateDir = await tempDir('byteor-state-');
  await prepare(stateDir);
  let reached = false;
  let onReached: () => void = () => undefined;
  const frozen = new Promise<void>((resolve) => {
    onReached = resolve;
  });
  const h = await startHarness({
    cp,
    baseUrl,
    clock,
    stateDir,
    extra: {
      outbox: {
        watch: false,
        hooks: {
          stage: (at) => {
            if (at !== stage) return undefined;
            reached = true;
            onReached();
            return never();
          },
        },
      },
    },
  });
  h.runtime.start();
  // Settle after each timer, unless the outbox froze (then it never will).
  for (let i = 0; i < 100 && !reached; i += 1) await clock.step(() => Promise.race([h.runtime.scheduler.whenIdle(), frozen]));
  expect(reached).toBe(true);
  // The kill: nothing is scheduled any more. Not awaited: the frozen run never settles.
  void h.runtime.scheduler.stop();
  return { stateDir, agent: { agentId: h.agentId, apiKey: h.apiKey } };
}

async function restart(killed: { stateDir: string; agent: { agentId: string; apiKey: string } }): Promise<Harness> {
  const h = await startHarness({ cp, baseUrl, clock, stateDir: killed.stateDir, agent: killed.agent, extra: { outbox: { watch: false } } });
  running.push(h);
  h.runtime.start();
  await h.advance(11 * SEC);
  return h;
}

describe('outbox: a kill at any stage loses nothing and sends each artifact once', () => {
  it('while packing: the partial archive is removed on restart and the capture goes up once', async () => {
    let sha = '';
    const killed = await killAt('packing', async (dir) => {
      sha = await dropEntry(dir, 'incident_bundle', 'incident-1', CAPTURE);
    });
    expect((await leftovers(killed.stateDir)).some((name) => name.startsWith('.packed/.'))).toBe(true);
    await restart(killed);
    expect(cp.artifacts.map((a) => [a.filename, a.sha256])).toEqual([['incident-1.tar.gz', sha]]);
    expect(await pending(killed.stateDir)).toEqual([]);
    expect(await leftovers(killed.stateDir)).toEqual([]);
  });

  it('after packing and hashing, before sending: packed again and sent once', async () => {
    let sha = '';
    const killed = await killAt('prepared', async (dir) => {
      sha = await dropEntry(dir, 'incident_bundle', 'incident-2', CAPTURE);
    });
    expect(await leftovers(killed.stateDir)).toHaveLength(1);
    await restart(killed);
    expect(cp.requestsTo('artifacts').map((r) => r.status)).toEqual([201]);
    expect(cp.artifacts.map((a) => a.sha256)).toEqual([sha]);
    expect(await leftovers(killed.stateDir)).toEqual([]);
  });

  it('after the server stored it, before the entry was removed: the repeat is deduplicated, nothing is stored twice', async () => {
    const killed = await killAt('uploaded', async (dir) => {
      await dropEntry(dir, 'diagnostic', 'trace.txt', 'stack trace\n');
    });
    expect(await pending(killed.stateDir)).toEqual(['diagnostic/trace.txt']);
    await restart(killed);
    expect(cp.requestsTo('artifacts').map((r) => r.status)).toEqual([201, 200]);
    expect(cp.artifacts).toHaveLength(1);
    expect(cp.artifacts[0]!.dedupCount).toBe(1);
    expect(await pending(killed.stateDir)).toEqual([]);
  });

  it('while deleting an uploaded directory: the half-deleted tree is never sent', async () => {
    const killed = await killAt('removing', async (dir) => {
      await dropEntry(dir, 'incident_bundle', 'incident-3', CAPTURE);
    });
    expect(await pending(killed.stateDir)).toEqual([]);
    expect((await leftovers(killed.stateDir)).some((name) => name.startsWith('.trash/'))).toBe(true);
    await restart(killed);
    expect(cp.requestsTo('artifacts')).toHaveLength(1);
    expect(await leftovers(killed.stateDir)).toEqual([]);
  });

  it('while moving a refused entry to .rejected/: the move is finished on restart, and it is not sent again', async () => {
    cp.fault('artifacts', { status: 413 });
    const killed = await killAt('rejecting', async (dir) => {
      await dropEntry(dir, 'incident_bundle', 'incident-4', CAPTURE);
    });
    expect(await pending(killed.stateDir)).toEqual([]);
    expect(await rejected(killed.stateDir)).toEqual([]);
    await restart(killed);
    expect(cp.requestsTo('artifacts')).toHaveLength(1);
    const [entry] = await rejected(killed.stateDir);
    expect(entry).toMatchObject({ name: 'incident-4', files: ['incident-4', 'reason.json'], reason: { code: 'too_large', status: 413 } });
    expect(await readdir(join(killed.stateDir, 'outbox', '.rejected', 'incident-4', 'incident-4', 'logs'))).toEqual(['app.log', 'kernel.log']);
    expect(await leftovers(killed.stateDir)).toEqual([]);
  });

  it('during the request (SIGTERM): the upload is aborted, the entry kept, and the restart sends it once', async () => {
    const stateDir = await tempDir('byteor-state-');
    await dropEntry(stateDir, 'diagnostic', 'slow.txt', 'slow\n');
    // The fake holds the request (real time) until the client aborts it.
    cp.fault('artifacts', { delayMs: 60_000 });
    const first = await startHarness({ cp, baseUrl, clock, stateDir, extra: { outbox: { watch: false } } });
    first.runtime.start();
    for (let i = 0; i < 100 && cp.requestsTo('artifacts').length === 0; i += 1) await clock.step();
    // Let the request reach the fake before stopping.
    for (let i = 0; i < 10_000 && cp.requestsTo('artifacts').length === 0; i += 1) await new Promise((resolve) => setImmediate(resolve));
    expect(cp.requestsTo('artifacts')).toHaveLength(1);
    // Resolves only if the in-flight upload is aborted (the fake would hold it for a minute).
    await first.runtime.stop();
    expect(await pending(stateDir)).toEqual(['diagnostic/slow.txt']);
    await restart({ stateDir, agent: { agentId: first.agentId, apiKey: first.apiKey } });
    expect(cp.artifacts.map((a) => a.filename)).toEqual(['slow.txt']);
    expect(await pending(stateDir)).toEqual([]);
  });

  it('removes copies abandoned by a killed `byteor-agent upload`, but not one still being written', async () => {
    const stateDir = await tempDir('byteor-state-');
    const dir = join(stateDir, 'outbox', 'diagnostic');
    await mkdir(dir, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    await writeFile(join(dir, `.byteor-upload-${dead}-abcdef`), 'half a copy');
    await writeFile(join(dir, `.byteor-upload-${process.pid}-123456`), 'being copied right now');
    const h = await restart({ stateDir, agent: cp.createAgent() });
    expect(await readdir(dir)).toEqual([`.byteor-upload-${process.pid}-123456`]);
    expect(cp.requestsTo('artifacts')).toHaveLength(0);
    expect(h.logs.records.some((r) => String(r.msg).includes('cleaned up after an interrupted run'))).toBe(true);
  });
});

describe('outbox: disk full while packing', () => {
  it('keeps the entry, removes the temp file, raises outbox_disk_full, and succeeds later', async () => {
    let failures = 0;
    const h = await startHarness({
      cp,
      baseUrl,
      clock,
      extra: {
        intervals: { heartbeatMs: 5_000 },
        outbox: {
          watch: false,
          hooks: {
            stage: (stage) => {
              if (stage === 'packing' && failures === 0) {
                failures += 1;
                throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
              }
            },
          },
        },
      },
    });
    running.push(h);
    const sha = await dropEntry(h.stateDir, 'incident_bundle', 'incident-5', CAPTURE);
    h.runtime.start();
    await h.advance(10 * SEC + 1);
    expect(failures).toBe(1);
    expect(await pending(h.stateDir)).toEqual(['incident_bundle/incident-5']);
    expect(await leftovers(h.stateDir)).toEqual([]);
    const doc = (await h.readJson('status.json')) as unknown as StatusDocument;
    expect(doc.problems).toContainEqual(expect.objectContaining({ code: 'outbox_disk_full', message: expect.stringContaining('incident_bundle/incident-5') }));
    expect(h.logs.records.some((r) => r.level === 'warn' && String(r.msg).includes('no space left'))).toBe(true);

    await h.advance(40 * SEC);
    expect(cp.artifacts.map((a) => a.sha256)).toEqual([sha]);
    expect(await pending(h.stateDir)).toEqual([]);
    const after = (await h.readJson('status.json')) as unknown as StatusDocument;
    expect(after.problems.map((p) => p.code)).not.toContain('outbox_disk_full');
    const beats = cp.heartbeatsOf(h.agentId).map((hb) => hb.body.problems.map((p) => p.code));
    expect(beats.some((codes) => codes.includes('outbox_disk_full'))).toBe(true);
    expect(beats.at(-1)).toEqual([]);
  });
});

describe('outbox: an entry the agent cannot read', () => {
  it('is kept with an outbox_unreadable problem naming it, while other entries go up', async () => {
    let denied = true;
    const h = await startHarness({
      cp,
      baseUrl,
      clock,
      extra: {
        outbox: {
          watch: false,
          hooks: {
            stage: (stage, entry) => {
              if (stage === 'packing' && entry.name === 'root-only' && denied) throw Object.assign(new Error(`EACCES: permission denied, open '${entry.path}/core'`), { code: 'EACCES' });
            },
          },
        },
      },
    });
    running.push(h);
    await dropEntry(h.stateDir, 'incident_bundle', 'root-only', CAPTURE, { mtime: new Date(1_000) });
    await dropEntry(h.stateDir, 'diagnostic', 'fine.txt', 'fine', { mtime: new Date(2_000) });
    h.runtime.start();
    await h.advance(11 * SEC);
    expect(cp.artifacts.map((a) => a.filename)).toEqual(['fine.txt']);
    expect(await pending(h.stateDir)).toEqual(['incident_bundle/root-only']);
    const doc = (await h.readJson('status.json')) as unknown as StatusDocument;
    expect(doc.problems).toContainEqual(expect.objectContaining({ code: 'outbox_unreadable', message: expect.stringContaining('incident_bundle/root-only'), fix: expect.stringContaining('chown byteor-agent') }));

    denied = false;
    await h.advance(30 * SEC);
    expect(cp.artifacts.map((a) => a.filename)).toEqual(['fine.txt', 'root-only.tar.gz']);
    expect(((await h.readJson('status.json')) as unknown as StatusDocument).problems).toEqual([]);
  });
});
