/**
 * Bundle pull: the agent's whole pipeline (fetch the deployment, verify its signature, download
 * with streaming sha256, check size and digest, extract safely, fsync, swap `current`) on a
 * ~200 MB bundle served by the local control plane over real HTTP, against the same work done by
 * the usual tools in the same run: `curl -o` + `sha256sum` + `tar -xzf`.
 *
 *   npx tsx scripts/bench/bundle.ts [--size-mb 200] [--runs 3] [--keep]
 *
 * The agent runs as its own process (bundled with esbuild, as shipped), so its peak RSS is its
 * own. Runs alternate (baseline, agent, baseline, …) after a `sync`, each into fresh directories;
 * the medians are compared. The agent's time is its whole process, Node start-up included.
 * Targets: ratio ≤ 1.3, peak RSS ≤ 150 MB. Test data is generated in a temp dir and removed.
 * Ends with one JSON line (see scripts/bench/run.ts).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { startControlPlaneCli } from '../control-plane.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MiB = 1024 * 1024;
const RATIO_TARGET = 1.3;
const RSS_TARGET_MB = 150;

const { values } = parseArgs({ options: { 'size-mb': { type: 'string', default: '200' }, runs: { type: 'string', default: '3' }, keep: { type: 'boolean', default: false } } });
const SIZE_MB = Number(values['size-mb']);
const RUNS = Number(values.runs);

const say = (text: string): void => {
  process.stderr.write(`[bundle ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
};
const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;
const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? { PATH: process.env.PATH, LANG: 'C.UTF-8' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.trim()}`))));
  });
}

/** Log-like text: compresses about 4:1, like real configuration and data files. */
function textBlock(bytes: number): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'region', 'replicas', 'timeout', 'endpoint', 'enabled', 'weight', 'shard', 'limit'];
  const lines: string[] = [];
  let size = 0;
  while (size < bytes) {
    const line = `${words[Math.floor(Math.random() * words.length)]}.${words[Math.floor(Math.random() * words.length)]}=${Math.floor(Math.random() * 1e6)} # ${randomBytes(6).toString('hex')}\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join('').slice(0, bytes));
}

/** A tree of mostly incompressible binaries plus text, packed by GNU tar + gzip (default level). */
async function makeBundle(dir: string): Promise<string> {
  const src = join(dir, 'src');
  // ~75 % of the bytes incompressible, the rest text that gzip shrinks to ~40 %: ≈ SIZE_MB MB.
  const randomMiB = Math.round(SIZE_MB * 0.75);
  const textMiB = Math.round(SIZE_MB * 0.5);
  for (let i = 0; i < randomMiB; i += 1) {
    const sub = join(src, 'models', `set-${Math.floor(i / 32)}`);
    await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `weights-${i}.bin`), randomBytes(MiB));
  }
  for (let i = 0; i < textMiB * 4; i += 1) {
    const sub = join(src, 'conf', `zone-${Math.floor(i / 64)}`);
    await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `service-${i}.conf`), textBlock(MiB / 4));
  }
  await writeFile(join(src, 'spec.kv'), 'bench=1\n');
  const bundle = join(dir, 'bundle.tar.gz');
  await run('tar', ['-czf', bundle, '-C', src, '.']);
  await rm(src, { recursive: true, force: true });
  return bundle;
}

async function buildWorker(dir: string): Promise<string> {
  const outfile = join(dir, 'bundle-agent.cjs');
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  await build({
    entryPoints: [join(ROOT, 'scripts/bench/lib/bundle-agent.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    define: { __BYTEOR_VERSION__: JSON.stringify(pkg.version) },
    logLevel: 'warning',
  });
  return outfile;
}

interface AgentRun {
  wallSeconds: number;
  pipelineSeconds: number;
  peakRssMb: number;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'byteor-bench-bundle-'));
  const silent = { write: () => true };
  const cli = await startControlPlaneCli([], { stdout: silent, stderr: silent });
  try {
    say(`generating a ~${SIZE_MB} MB bundle in ${dir}`);
    const bundlePath = await makeBundle(dir);
    const bundle = await readFile(bundlePath);
    await rm(bundlePath);
    const worker = await buildWorker(dir);

    const { cp } = cli.server;
    const agent = cp.createAgent();
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle });
    const sha = deployment.bundle.sha256;
    const url = `${cli.server.baseUrl}${deployment.bundle.url}`;
    say(`bundle: ${round(bundle.length / 1e6, 1)} MB (${round(bundle.length / MiB, 1)} MiB), sha256 ${sha.slice(0, 16)}…, served at ${url}`);
    // The key reaches curl through a file, never the command line.
    const headers = join(dir, 'curl-headers');
    await writeFile(headers, `Authorization: Bearer ${agent.apiKey}\n`, { mode: 0o600 });

    const baseline: number[] = [];
    const agentRuns: AgentRun[] = [];
    for (let i = 0; i < RUNS; i += 1) {
      const out = join(dir, `baseline-${i}`);
      await mkdir(join(out, 'x'), { recursive: true });
      await run('sync', []);
      let started = performance.now();
      await run('curl', ['-sS', '--fail', '-H', `@${headers}`, '-o', join(out, 'bundle.tar.gz'), url]);
      const { stdout } = await run('sha256sum', [join(out, 'bundle.tar.gz')]);
      await run('tar', ['-xzf', join(out, 'bundle.tar.gz'), '-C', join(out, 'x')]);
      baseline.push((performance.now() - started) / 1000);
      if (!stdout.startsWith(sha)) throw new Error(`baseline digest ${stdout.slice(0, 64)} is not ${sha}`);
      await rm(out, { recursive: true, force: true });

      const stateDir = join(dir, `agent-${i}`);
      await run('sync', []);
      started = performance.now();
      const result = await run(process.execPath, [worker], {
        env: { PATH: process.env.PATH, LANG: 'C.UTF-8', ...(process.env.BENCH_DURABLE === undefined ? {} : { BENCH_DURABLE: process.env.BENCH_DURABLE }), BENCH_AGENT: JSON.stringify({ baseUrl: cli.server.baseUrl, agentId: agent.agentId, apiKey: agent.apiKey, stateDir }) },
      });
      const wallSeconds = (performance.now() - started) / 1000;
      const report = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { seconds: number; steps: Record<string, number>; downloadPeakKb: number; maxRssKb: number; current: string | null; failed: unknown };
      if (report.current !== sha) throw new Error(`the agent did not activate the bundle: ${JSON.stringify(report.failed)} ${result.stderr}`);
      agentRuns.push({ wallSeconds, pipelineSeconds: report.seconds, peakRssMb: report.maxRssKb / 1024 });
      await rm(stateDir, { recursive: true, force: true });
      const phases = Object.entries(report.steps).map(([step, at]) => `${step} ${round(at)}`).join(', ');
      say(`run ${i + 1}/${RUNS}: baseline ${round(baseline[i] as number)} s, agent ${round(wallSeconds)} s (pipeline ${round(report.seconds)} s: ${phases}; peak RSS ${round(report.maxRssKb / 1024, 1)} MB, ${round(report.downloadPeakKb / 1024, 1)} MB by the end of the download)`);
    }

    const agentS = median(agentRuns.map((r) => r.wallSeconds));
    const baselineS = median(baseline);
    const ratio = agentS / baselineS;
    const peak = Math.max(...agentRuns.map((r) => r.peakRssMb));
    say(`median: agent ${round(agentS)} s (pipeline ${round(median(agentRuns.map((r) => r.pipelineSeconds)))} s) vs curl + sha256sum + tar ${round(baselineS)} s: ratio ${round(ratio)} (target ≤ ${RATIO_TARGET}); agent peak RSS ${round(peak, 1)} MB (target ≤ ${RSS_TARGET_MB})`);
    process.stdout.write(
      `${JSON.stringify({
        name: 'bundle',
        agent_s: round(agentS),
        baseline_s: round(baselineS),
        ratio: round(ratio),
        target: `≤ ${RATIO_TARGET}`,
        peak_rss_mb: round(peak, 1),
        pass: ratio <= RATIO_TARGET && peak <= RSS_TARGET_MB,
        agent_pipeline_s: round(median(agentRuns.map((r) => r.pipelineSeconds))),
        bundle_mb: round(bundle.length / 1e6, 1),
        runs: RUNS,
      })}\n`,
    );
  } finally {
    await cli.close();
    if (values.keep) say(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bundle bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
