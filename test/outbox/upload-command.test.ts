import { createHash } from 'node:crypto';
import { chmod, chown, mkdir, readdir, readFile, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { ALL_RUNTIME_SCOPES } from '../control-plane/agents.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { captureContext, type CapturedContext } from '../support/command-context.js';
import { tempDir } from '../support/tmp.js';
import { expectedSha256, pending, writeContent } from './helpers.js';

const { cp, baseUrl } = setupControlPlane();

interface Setup {
  dir: string;
  stateDir: string;
  envFile: string;
  apiKey: string;
}

async function setup(options: { scopes?: string[]; stateDir?: boolean } = {}): Promise<Setup> {
  const agent = cp.createAgent(options.scopes === undefined ? {} : { scopes: options.scopes });
  const dir = await tempDir('byteor-upload-');
  const stateDir = join(dir, 'state');
  if (options.stateDir !== false) await mkdir(stateDir, { mode: 0o700 });
  const envFile = join(dir, 'agent.env');
  await writeFile(envFile, [`BYTEOR_API_BASE_URL='${baseUrl}'`, `BYTEOR_AGENT_ID='${agent.agentId}'`, `BYTEOR_AGENT_API_KEY='${agent.apiKey}'`, `BYTEOR_STATE_DIR='${stateDir}'`, ''].join('\n'), { mode: 0o600 });
  return { dir, stateDir, envFile, apiKey: agent.apiKey };
}

async function cli(s: Setup, args: string[], options: { progress?: boolean } = {}): Promise<CapturedContext & { code: number; progress: string[] }> {
  const captured = captureContext();
  const progress: string[] = [];
  if (options.progress === true) captured.ctx.progress = (text) => progress.push(text);
  const code = await runCli(['node', 'byteor-agent', ...args, '--config', s.envFile], captured.ctx);
  // Whatever happened, the runtime key never reaches the user's terminal.
  expect([...captured.stdout, ...captured.stderr].join('\n')).not.toContain(s.apiKey);
  return { ...captured, code, progress };
}

describe('byteor-agent upload (queue)', () => {
  it('copies a file into the outbox atomically, keeping its mtime, and leaves the original alone', async () => {
    const s = await setup();
    const source = join(s.dir, 'dmesg.txt');
    await writeFile(source, 'kernel log\n');
    await utimes(source, new Date('2026-01-02T03:04:05Z'), new Date('2026-01-02T03:04:05Z'));
    const first = await cli(s, ['upload', '--type', 'diagnostic', source]);
    expect(first.code).toBe(0);
    expect(first.stdout.join('\n')).toMatch(/^queued .*dmesg\.txt as .*outbox\/diagnostic\/dmesg\.txt \(diagnostic, 11 B\)/);
    const again = await cli(s, ['upload', '--type', 'diagnostic', source]);
    expect(again.code).toBe(0);

    expect(await pending(s.stateDir)).toEqual(['diagnostic/dmesg-2.txt', 'diagnostic/dmesg.txt']);
    expect(await readdir(join(s.stateDir, 'outbox', 'diagnostic'))).toEqual(['dmesg-2.txt', 'dmesg.txt']);
    expect(await readFile(join(s.stateDir, 'outbox', 'diagnostic', 'dmesg.txt'), 'utf8')).toBe('kernel log\n');
    expect((await stat(join(s.stateDir, 'outbox', 'diagnostic', 'dmesg.txt'))).mtime.toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect(await readFile(source, 'utf8')).toBe('kernel log\n');
    expect(cp.requestsTo('artifacts')).toHaveLength(0);
  });

  it("hands what it queues to the state directory's owner (the agent's user) when run as root", async () => {
    const s = await setup();
    const asRoot = process.getuid?.() === 0;
    // As root, make the state directory belong to another user, as systemd's StateDirectory= does.
    const owner = asRoot ? 65534 : process.getuid!();
    if (asRoot) await chown(s.stateDir, owner, owner);
    const source = join(s.dir, 'capture');
    await writeContent(source, { 'a.txt': 'a', 'sub/b.txt': 'b' });
    // A capture written by root with mode 000 must still be readable by the agent once queued.
    if (asRoot) await chmod(join(source, 'a.txt'), 0o000);
    const run = await cli(s, ['upload', '--type', 'incident_bundle', source]);
    expect(run.code).toBe(0);
    const placed = join(s.stateDir, 'outbox', 'incident_bundle', 'capture');
    for (const path of [join(s.stateDir, 'outbox'), join(s.stateDir, 'outbox', 'incident_bundle'), placed, join(placed, 'a.txt'), join(placed, 'sub', 'b.txt')]) {
      const info = await stat(path);
      expect({ path, uid: info.uid }).toEqual({ path, uid: owner });
      // The owner can read it (and list and remove within directories).
      expect(info.mode & (info.isDirectory() ? 0o700 : 0o600)).toBe(info.isDirectory() ? 0o700 : 0o600);
    }
  });

  it('moves a directory with --move', async () => {
    const s = await setup();
    const source = join(s.dir, 'incident-9');
    await writeContent(source, { 'meta.json': '{}', 'logs/a.log': 'a' });
    const run = await cli(s, ['upload', '--type', 'incident_bundle', '--move', source]);
    expect(run.code).toBe(0);
    expect(await pending(s.stateDir)).toEqual(['incident_bundle/incident-9']);
    expect(await readFile(join(s.stateDir, 'outbox', 'incident_bundle', 'incident-9', 'logs', 'a.log'), 'utf8')).toBe('a');
    await expect(stat(source)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses what cannot be an artifact, with a clear message and a distinct exit code', async () => {
    const s = await setup();
    const big = join(s.dir, 'core.bin');
    await writeFile(big, '');
    await truncate(big, 70 * 1024 * 1024);
    await mkdir(join(s.stateDir, 'outbox', 'diagnostic'), { recursive: true });
    await writeFile(join(s.stateDir, 'outbox', 'diagnostic', 'queued.txt'), 'x');

    const cases: [string[], number, RegExp][] = [
      [['upload', '--type', 'logs', big], 64, /unknown artifact type "logs": use one of incident_bundle, snapshot, diagnostic/],
      [['upload', join(s.dir, 'missing.txt')], 64, /required option '--type <type>' not specified/],
      [['upload', '--type', 'diagnostic', join(s.dir, 'missing.txt')], 66, /cannot read .*missing\.txt: no such file or directory/],
      [['upload', '--type', 'diagnostic', big], 65, /core\.bin is 70 MiB \(73400320 bytes\); artifacts are limited to 64 MiB/],
      [['upload', '--type', 'diagnostic', join(s.stateDir, 'outbox', 'diagnostic', 'queued.txt')], 64, /already in the agent's outbox/],
      [['upload', '--type', 'incident_bundle', s.dir], 64, /contains the agent's outbox/],
    ];
    for (const [args, code, message] of cases) {
      const run = await cli(s, args);
      expect({ args, code: run.code }).toEqual({ args, code });
      expect(run.stderr.join('\n')).toMatch(message);
    }
    expect(await pending(s.stateDir)).toEqual(['diagnostic/queued.txt']);
  });

  it('says so when the state directory does not exist (agent not installed)', async () => {
    const s = await setup({ stateDir: false });
    const source = join(s.dir, 'a.txt');
    await writeFile(source, 'a');
    const run = await cli(s, ['upload', '--type', 'diagnostic', source]);
    expect(run.code).toBe(69);
    expect(run.stderr.join('\n')).toMatch(/state directory .* does not exist: is the agent installed/);
  });
});

describe('byteor-agent upload --now', () => {
  it('uploads a file in the foreground and exits 0, queuing nothing; a repeat is reported as deduplicated', async () => {
    const s = await setup();
    const source = join(s.dir, 'trace.txt');
    await writeFile(source, 'stack\n');
    const run = await cli(s, ['upload', '--type', 'diagnostic', '--now', source]);
    expect(run.code).toBe(0);
    const sha = createHash('sha256').update('stack\n').digest('hex');
    expect(cp.artifacts.map((a) => [a.type, a.filename, a.sha256])).toEqual([['diagnostic', 'trace.txt', sha]]);
    expect(run.stdout.join('\n')).toBe(`uploaded ${source} (diagnostic, 6 B, sha256 ${sha}) as ${cp.artifacts[0]!.artifactId}`);
    expect(await pending(s.stateDir)).toEqual([]);

    const repeat = await cli(s, ['upload', '--type', 'diagnostic', '--now', source]);
    expect(repeat.code).toBe(0);
    expect(repeat.stdout.join('\n')).toMatch(/^already uploaded: .* is art_\w+ \(deduplicated\)$/);
  });

  it('packs a directory deterministically, shows a progress bar only on a terminal, and cleans its temp files', async () => {
    const s = await setup();
    const tree = { 'meta.json': '{"trigger":"manual"}', 'cores/core.1': Buffer.alloc(500_000, 3) };
    const source = join(s.dir, 'incident-10');
    await writeContent(source, tree);
    const run = await cli(s, ['upload', '--type', 'incident_bundle', '--now', source], { progress: true });
    expect(run.code).toBe(0);
    expect(cp.artifacts.map((a) => [a.filename, a.sha256, a.contentType])).toEqual([['incident-10.tar.gz', await expectedSha256(tree), 'application/gzip']]);
    const drawn = run.progress.join('');
    expect(drawn).toMatch(/\ruploading incident-10\.tar\.gz \[#+\] 100%/);
    expect(drawn.endsWith('\n')).toBe(true);
    expect(run.stderr).toEqual([]);

    const quiet = await cli(s, ['upload', '--type', 'incident_bundle', '--now', source]);
    expect(quiet.code).toBe(0);
    expect(quiet.progress).toEqual([]);
  });

  it('exits 65 when the control plane refuses the artifact, and does not queue it', async () => {
    const s = await setup();
    cp.fault('artifacts', { status: 413, body: { error: { code: 'payload_too_large', message: 'over the cap' } } });
    const source = join(s.dir, 'x.bin');
    await writeFile(source, 'x');
    const run = await cli(s, ['upload', '--type', 'diagnostic', '--now', source]);
    expect(run.code).toBe(65);
    expect(run.stderr.join('\n')).toMatch(/the control plane refused .*x\.bin: .*413.*over the cap/);
    expect(await pending(s.stateDir)).toEqual([]);
  });

  it('exits 77 without queuing when the key lacks agent:artifact_upload', async () => {
    const s = await setup({ scopes: ALL_RUNTIME_SCOPES.filter((scope) => scope !== 'agent:artifact_upload') });
    const source = join(s.dir, 'x.bin');
    await writeFile(source, 'x');
    const run = await cli(s, ['upload', '--type', 'diagnostic', '--now', source]);
    expect(run.code).toBe(77);
    expect(run.stderr.join('\n')).toMatch(/agent:artifact_upload/);
    expect(await pending(s.stateDir)).toEqual([]);
  });

  it('after temporary failures, hands the artifact to the outbox and exits 75', async () => {
    const s = await setup();
    cp.fault('artifacts', { status: 503, times: Infinity });
    const source = join(s.dir, 'later.txt');
    await writeFile(source, 'later');
    const captured = captureContext();
    const { runUpload } = await import('../../src/commands/upload.js');
    const code = await runUpload(source, { type: 'diagnostic', now: true, config: s.envFile }, captured.ctx, { retry: { minDelayMs: 0, maxDelayMs: 0 } });
    expect(code).toBe(75);
    expect(cp.requestsTo('artifacts')).toHaveLength(4);
    expect(captured.stderr.filter((line) => line.startsWith('upload failed'))).toHaveLength(3);
    expect(captured.stderr.at(-1)).toMatch(/could not upload .*later\.txt now \(.*503.*\); queued it as .*outbox\/diagnostic\/later\.txt: the running agent keeps retrying/);
    expect(await pending(s.stateDir)).toEqual(['diagnostic/later.txt']);
    expect(await readFile(source, 'utf8')).toBe('later');
  });

  it('waits as long as Retry-After says before trying again', async () => {
    const s = await setup();
    cp.fault('artifacts', { status: 429, retryAfter: '7', times: 2 });
    const source = join(s.dir, 'paced.txt');
    await writeFile(source, 'paced');
    const waits: number[] = [];
    const captured = captureContext();
    const { runUpload } = await import('../../src/commands/upload.js');
    const code = await runUpload(source, { type: 'diagnostic', now: true, config: s.envFile }, captured.ctx, {
      retry: { minDelayMs: 0, maxDelayMs: 0, sleep: async (ms) => void waits.push(ms) },
    });
    expect(code).toBe(0);
    expect(waits).toEqual([7_000, 7_000]);
    expect(captured.stderr).toHaveLength(2);
    for (const line of captured.stderr) expect(line).toMatch(/^upload failed \(POST .*\/artifacts → 429 rate limited .*\); retrying in 7 s as the control plane asked$/);
    expect(cp.artifacts.map((a) => a.filename)).toEqual(['paced.txt']);
  });
});

describe('byteor-agent snapshot', () => {
  it("queues a JSON snapshot of the agent's state: host facts, deployment and problems from status.json", async () => {
    const s = await setup();
    await writeFile(
      join(s.stateDir, 'status.json'),
      JSON.stringify({
        schema: 1,
        state: 'degraded',
        pid: 4242,
        started_at: '2026-12-04T10:00:00.000Z',
        updated_at: '2026-12-04T11:00:00.000Z',
        heartbeat: { sequence: 12 },
        deployment: { current: { deployment_id: 'dep_1', bundle_sha256: 'ab'.repeat(32), state: 'active', activated_at: '2026-12-04T10:01:00.000Z' }, previous: null, target: null, failed: null },
        jobs: {},
        signing_keys: { kids: ['k1'], fetched_at: null },
        problems: [{ code: 'outbox_disk_full', message: 'no space', fix: 'free space', since: '2026-12-04T10:30:00.000Z' }],
      }),
    );
    const run = await cli(s, ['snapshot']);
    expect(run.code).toBe(0);
    const [name] = await readdir(join(s.stateDir, 'outbox', 'snapshot'));
    expect(name).toMatch(/^snapshot-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z\.json$/);
    expect(run.stdout.join('\n')).toContain(`queued snapshot ${join(s.stateDir, 'outbox', 'snapshot', name!)}`);
    const text = await readFile(join(s.stateDir, 'outbox', 'snapshot', name!), 'utf8');
    expect(text).not.toContain(s.apiKey);
    const doc = JSON.parse(text) as { host: { hostname: unknown; metrics: { cpu_count: number } } };
    expect(doc).toMatchObject({
      schema: 1,
      kind: 'byteor-agent-snapshot',
      agent: { agent_version: '0.1.0', state_dir: s.stateDir },
      running: { known: true, state: 'degraded', pid: 4242 },
      deployment: { current: { deployment_id: 'dep_1' } },
      problems: [{ code: 'outbox_disk_full' }],
      outbox: { pending: 0, rejected: 0 },
    });
    expect(typeof doc.host.hostname).toBe('string');
    expect(doc.host.metrics.cpu_count).toBeGreaterThan(0);
  });
});
