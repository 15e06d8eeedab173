/**
 * Upload throughput and memory: one 64 MiB artifact to the local control plane (real HTTP on
 * 127.0.0.1, served from this process), once by the agent and once by `curl -F`, alternating, a few
 * rounds; the medians are compared. The times compared are the upload requests as the control
 * plane sees them (arrival to answer), the same measure for both clients; the whole commands' times
 * are printed too, but Node's start-up (~0.2 s) and hashing the file (~0.15 s) have no counterpart
 * in the curl run, whose metadata is prepared beforehand.
 *
 *   agent     `node dist/byteor-agent.cjs upload --now --type diagnostic FILE` as a child process:
 *             what an operator runs. Its time includes Node's start, reading the config, hashing
 *             the file (the agent must send its sha256 first) and the upload. Its RSS is sampled
 *             from /proc every few ms; the growth is the peak between the control plane seeing the
 *             request arrive and answering it, over the RSS at its arrival (Node's start-up and the
 *             exit are not the upload; the whole command's peak is printed too).
 *   baseline  `curl -F metadata=<meta.json -F file=@FILE` with the same headers and metadata (its
 *             sha256 computed beforehand, outside the timing).
 *
 * Targets (issue 5): agent/curl time ≤ 1.25, RSS growth ≤ 32 MB.
 *
 *   npx tsx scripts/bench/upload.ts [--rounds 5] [--mib 64]
 *
 * Ends with one JSON line: {"name":"upload","agent_s":…,"baseline_s":…,"ratio":…,"target":"≤ 1.25","rss_growth_mb":…,"pass":…}
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startControlPlaneServer, type ControlPlaneServer } from '../../test/control-plane/http-server.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, mib: { type: 'string', default: '64' } } });
const ROUNDS = Number(values.rounds);
const SIZE = Number(values.mib) * 1024 * 1024;
const TARGET_RATIO = 1.25;
const TARGET_RSS_MB = 32;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUNDLE = join(ROOT, 'dist', 'byteor-agent.cjs');
const SAMPLE_MS = 2;

const say = (text: string): void => {
  process.stderr.write(`[upload-bench] ${text}\n`);
};

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const mb = (bytes: number): number => Math.round((bytes / 1e6) * 10) / 10;

async function rssOf(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

interface Run {
  /** Spawn to exit. */
  commandSeconds: number;
  /** The upload request as the control plane saw it: from its arrival to the answer (±2 ms). */
  requestSeconds: number;
  code: number | null;
  output: string;
  rssGrowth?: number;
  rssAtRequest?: number;
  rssPeak?: number;
  /** The child's highest RSS from start to exit. */
  rssProcessPeak?: number;
}

/**
 * Spawns and times a command, watching the control plane's record of the upload request it makes;
 * with `sampleRss`, also samples the child's RSS from the request's arrival to its exit.
 */
function timed(command: string, args: string[], server: ControlPlaneServer, sampleRss: boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    const before = server.cp.requestsTo('artifacts').length;
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let exited = false;
    let last: number | undefined;
    let atRequest: number | undefined;
    let peak = 0;
    let processPeak = 0;
    let answeredAt: number | undefined;
    const sample = async (): Promise<void> => {
      while (!exited) {
        const record = server.cp.requestsTo('artifacts')[before];
        if (record !== undefined && record.status !== -1) answeredAt ??= Date.now();
        if (sampleRss && child.pid !== undefined) {
          const rss = await rssOf(child.pid);
          if (rss !== undefined) {
            if (atRequest === undefined && record !== undefined) atRequest = last ?? rss;
            // During the upload only: from the request's arrival to the control plane's answer.
            if (atRequest !== undefined && answeredAt === undefined) peak = Math.max(peak, rss);
            processPeak = Math.max(processPeak, rss);
            last = rss;
          }
        }
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
      }
    };
    const sampling = sample();
    child.on('error', reject);
    child.on('exit', (code) => {
      exited = true;
      const commandSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      void sampling.then(() => {
        const record = server.cp.requestsTo('artifacts')[before];
        if (record === undefined) {
          resolve({ commandSeconds, requestSeconds: Number.NaN, code, output: output.trim() });
          return;
        }
        const requestSeconds = ((answeredAt ?? Date.now()) - record.at) / 1000;
        resolve({ commandSeconds, requestSeconds, code, output: output.trim(), ...(atRequest === undefined ? {} : { rssGrowth: Math.max(0, peak - atRequest), rssAtRequest: atRequest, rssPeak: peak, rssProcessPeak: processPeak }) });
      });
    });
  });
}

async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path, 'w');
  try {
    for (let written = 0; written < size; ) {
      const chunk = randomBytes(Math.min(1024 * 1024, size - written));
      hash.update(chunk);
      await handle.write(chunk);
      written += chunk.length;
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

async function main(): Promise<void> {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first`);
  const dir = await mkdtemp(join(tmpdir(), 'byteor-upload-bench-'));
  const server = await startControlPlaneServer();
  try {
    const agent = server.cp.createAgent({ name: 'upload-bench' });
    const stateDir = join(dir, 'state');
    await mkdir(stateDir, { mode: 0o700 });
    const envFile = join(dir, 'agent.env');
    await writeFile(envFile, [`BYTEOR_API_BASE_URL='${server.baseUrl}'`, `BYTEOR_AGENT_ID='${agent.agentId}'`, `BYTEOR_AGENT_API_KEY='${agent.apiKey}'`, `BYTEOR_STATE_DIR='${stateDir}'`, `BYTEOR_LOG_LEVEL='warn'`, ''].join('\n'), { mode: 0o600 });

    const file = join(dir, 'artifact.bin');
    say(`writing ${values.mib} MiB of random bytes`);
    const sha256 = await writeRandomFile(file, SIZE);
    // curl gets the same metadata, and the key from a file rather than its command line.
    const meta = join(dir, 'meta.json');
    await writeFile(meta, JSON.stringify({ type: 'diagnostic', sha256, size_bytes: SIZE, captured_at: new Date().toISOString(), filename: 'artifact.bin', labels: {} }));
    const headers = join(dir, 'headers.txt');
    await writeFile(headers, `Authorization: Bearer ${agent.apiKey}\nUser-Agent: curl-baseline\n`, { mode: 0o600 });
    const url = `${server.baseUrl}/api/v1/agents/${agent.agentId}/artifacts`;

    const agentRun = (): Promise<Run> => timed(process.execPath, [BUNDLE, 'upload', '--now', '--type', 'diagnostic', file, '--config', envFile], server, true);
    const curlRun = (): Promise<Run> =>
      timed('curl', ['-sS', '--fail-with-body', '-o', '/dev/null', '-w', '%{http_code}', '-H', `@${headers}`, '-F', `metadata=<${meta};type=application/json`, '-F', `file=@${file};type=application/octet-stream;filename=artifact.bin`, url], server, false);

    say('warm-up (page cache, first store)');
    for (const run of [await agentRun(), await curlRun()]) if (run.code !== 0) throw new Error(`warm-up failed (${run.code}): ${run.output}`);

    const agentRequest: number[] = [];
    const curlRequest: number[] = [];
    const agentCommand: number[] = [];
    const curlCommand: number[] = [];
    const growths: number[] = [];
    for (let round = 1; round <= ROUNDS; round += 1) {
      const a = await agentRun();
      if (a.code !== 0 || !/uploaded|already uploaded/.test(a.output)) throw new Error(`agent upload failed (${a.code}): ${a.output}`);
      const c = await curlRun();
      if (c.code !== 0 || !/^20[01]$/.test(c.output)) throw new Error(`curl upload failed (${c.code}): ${c.output}`);
      agentRequest.push(a.requestSeconds);
      curlRequest.push(c.requestSeconds);
      agentCommand.push(a.commandSeconds);
      curlCommand.push(c.commandSeconds);
      if (a.rssGrowth !== undefined) growths.push(a.rssGrowth);
      say(
        `round ${round}: upload request agent ${a.requestSeconds.toFixed(3)} s, curl ${c.requestSeconds.toFixed(3)} s; whole command agent ${a.commandSeconds.toFixed(3)} s, curl ${c.commandSeconds.toFixed(3)} s; agent RSS ${mb(a.rssAtRequest ?? 0)} → peak ${mb(a.rssPeak ?? 0)} MB during the upload (+${mb(a.rssGrowth ?? 0)} MB), ${mb(a.rssProcessPeak ?? 0)} MB at most over the whole command`,
      );
    }
    const stored = server.cp.artifacts.filter((artifact) => artifact.sha256 === sha256);
    if (stored.length !== 1) throw new Error(`expected the artifact stored once, found ${stored.length}`);

    const round3 = (x: number): number => Math.round(x * 1000) / 1000;
    const agentS = median(agentRequest);
    const baselineS = median(curlRequest);
    const ratio = Math.round((agentS / baselineS) * 100) / 100;
    const commandRatio = Math.round((median(agentCommand) / median(curlCommand)) * 100) / 100;
    const rssGrowthMb = growths.length === 0 ? null : mb(Math.max(...growths));
    const pass = ratio <= TARGET_RATIO && rssGrowthMb !== null && rssGrowthMb <= TARGET_RSS_MB;
    say(`upload request (median): agent ${agentS.toFixed(3)} s, curl ${baselineS.toFixed(3)} s, ratio ${ratio} (target ≤ ${TARGET_RATIO}); worst RSS growth ${rssGrowthMb} MB (target ≤ ${TARGET_RSS_MB} MB)`);
    say(`whole command (median, informational: Node start-up and hashing the file are in the agent's, not in curl's): agent ${median(agentCommand).toFixed(3)} s, curl ${median(curlCommand).toFixed(3)} s, ratio ${commandRatio}`);
    process.stdout.write(
      `${JSON.stringify({
        name: 'upload',
        agent_s: round3(agentS),
        baseline_s: round3(baselineS),
        ratio,
        target: `≤ ${TARGET_RATIO}`,
        rss_growth_mb: rssGrowthMb,
        pass,
        agent_command_s: round3(median(agentCommand)),
        baseline_command_s: round3(median(curlCommand)),
        command_ratio: commandRatio,
        // One table row per measure for scripts/bench/run.ts.
        rows: [
          { name: 'upload 64 MiB: request time', agent_s: round3(agentS), baseline_s: round3(baselineS), ratio, target: `≤ ${TARGET_RATIO}`, pass: ratio <= TARGET_RATIO },
          { name: 'upload 64 MiB: RSS growth', agent_mb: rssGrowthMb, baseline_mb: null, target: `≤ ${TARGET_RSS_MB} MB`, pass: rssGrowthMb !== null && rssGrowthMb <= TARGET_RSS_MB },
          { name: 'upload 64 MiB: whole command (info)', agent_s: round3(median(agentCommand)), baseline_s: round3(median(curlCommand)), ratio: commandRatio, target: 'none (Node start-up + hashing)' },
        ],
      })}\n`,
    );
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`upload bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
