/**
 * Footprint: the built agent (`dist/byteor-agent.cjs run`, freshly enrolled against the local
 * control plane, production intervals: heartbeat 30 s) against a bare Node process
 * (`node -e "setInterval(()=>{}, 1000)"`), both spawned in this one run and left idle:
 *
 *   RSS          resident memory at the end of the idle window (VmRSS; VmHWM printed too)
 *                target: agent ≤ bare + 40 MB
 *   CPU          CPU seconds (utime + stime from /proc/<pid>/stat) during the idle window,
 *                which starts once the first heartbeat has arrived: target ≤ 1 % of one core
 *   first beat   spawn → first heartbeat received by the control plane, for 7 fresh installs (the
 *                first heartbeat is jittered): target slowest ≤ 1 s (baseline: spawn → first
 *                output of a bare `node -e`)
 *
 *   npm run build && npx tsx scripts/bench/footprint.ts [--idle-seconds 60]
 *
 * Ends with one JSON line (see scripts/bench/run.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startControlPlaneServer, type ControlPlaneServer } from '../../test/control-plane/http-server.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const AGENT = join(ROOT, 'dist', 'byteor-agent.cjs');
const { values } = parseArgs({ options: { 'idle-seconds': { type: 'string', default: '60' } } });
const IDLE_MS = Number(values['idle-seconds']) * 1000;
const MB = 1024 * 1024;
const FIRST_BEAT_SAMPLES = 7;

const say = (text: string): void => {
  process.stderr.write(`[footprint ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** A child environment without inherited proxies or secrets. */
const childEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', ...extra });

async function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

let clockTicks = 100;

/** CPU seconds (user + system) of a live process. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / clockTicks;
}

async function memory(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

function drain(child: ChildProcess): void {
  // Logs are read and dropped, as journald would read them: a full pipe would stall the agent.
  child.stdout?.on('data', () => undefined);
  child.stderr?.on('data', () => undefined);
}

async function stop(child: ChildProcess): Promise<number | null> {
  // A process killed by a signal has no exit code, only a signalCode: both mean it is gone.
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  return exited;
}

/** Spawn → first byte on stdout of a bare node: what "starting a Node process" costs here. */
async function bareStartMs(): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 5; i += 1) {
    const at = performance.now();
    const child = spawn(process.execPath, ['-e', "process.stdout.write('x')"], { env: childEnv(), stdio: ['ignore', 'pipe', 'ignore'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    samples.push(performance.now() - at);
    await new Promise((resolve) => child.once('close', resolve));
  }
  return samples.sort((a, b) => a - b)[2] ?? Number.NaN;
}

interface Enrolled {
  agentId: string;
  envFile: string;
  stateDir: string;
}

async function enrollFresh(server: ControlPlaneServer, dir: string, name: string): Promise<Enrolled> {
  const env = server.cp.defaultEnvironment;
  const envFile = join(dir, `${name}.env`);
  const stateDir = join(dir, name);
  const enrolled = await run(
    process.execPath,
    [AGENT, 'enroll', '--config', envFile, '--state-dir', stateDir, '--api-base-url', server.baseUrl, '--org', env.orgId, '--project', env.projectId, '--environment', env.environmentId, '--name', name],
    childEnv({ BYTEOR_ENROLLMENT_TOKEN: server.cp.issueEnrollmentToken() }),
  );
  if (enrolled.code !== 0) throw new Error(`enrollment failed (${enrolled.code}): ${enrolled.output}`);
  const agent = server.cp.agents().find((a) => a.name === name);
  if (agent === undefined) throw new Error(`enrolled agent ${name} not found`);
  return { agentId: agent.agentId, envFile, stateDir };
}

/** Polls the control plane for the agent's first heartbeat; its time of arrival (ms). */
async function firstHeartbeat(server: ControlPlaneServer, agentId: string, deadline: number): Promise<number> {
  for (;;) {
    const at = server.cp.heartbeatsOf(agentId)[0]?.at;
    if (at !== undefined) return at;
    if (Date.now() > deadline) throw new Error(`no heartbeat from ${agentId}`);
    await sleep(2);
  }
}

/** More fresh starts: the first heartbeat is jittered, so one sample says little. */
async function moreFirstBeats(server: ControlPlaneServer, dir: string, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const fresh = await enrollFresh(server, dir, `fresh-${i}`);
    const spawnedAt = Date.now();
    const child = spawn(process.execPath, [AGENT, 'run', '--config', fresh.envFile, '--state-dir', fresh.stateDir], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    drain(child);
    try {
      out.push((await firstHeartbeat(server, fresh.agentId, spawnedAt + 30_000)) - spawnedAt);
    } finally {
      await stop(child);
    }
  }
  return out;
}

async function main(): Promise<void> {
  if (!existsSync(AGENT)) throw new Error(`${AGENT} is missing: run \`npm run build\` first (npm run bench does)`);
  const ticks = await run('getconf', ['CLK_TCK'], childEnv());
  if (ticks.code === 0 && Number(ticks.output) > 0) clockTicks = Number(ticks.output);

  const server = await startControlPlaneServer();
  const dir = await mkdtemp(join(tmpdir(), 'byteor-footprint-'));
  const children: ChildProcess[] = [];
  try {
    const { agentId, envFile, stateDir } = await enrollFresh(server, dir, 'footprint');
    say(`enrolled ${agentId}; spawning the bare node and the agent`);

    const bare = spawn(process.execPath, ['-e', 'setInterval(()=>{}, 1000)'], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const spawnedAt = Date.now();
    const agent = spawn(process.execPath, [AGENT, 'run', '--config', envFile, '--state-dir', stateDir], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(bare, agent);
    drain(bare);
    drain(agent);
    if (bare.pid === undefined || agent.pid === undefined) throw new Error('spawn failed');

    const firstBeatMs = (await firstHeartbeat(server, agentId, spawnedAt + 30_000)) - spawnedAt;
    say(`first heartbeat ${firstBeatMs} ms after spawn; idling ${IDLE_MS / 1000} s`);

    const cpuStart = { agent: await cpuSeconds(agent.pid), bare: await cpuSeconds(bare.pid) };
    const idleStart = Date.now();
    const rssSamples: { agent: number[]; bare: number[] } = { agent: [], bare: [] };
    while (Date.now() - idleStart < IDLE_MS) {
      await sleep(1_000);
      if (agent.exitCode !== null || agent.signalCode !== null) throw new Error(`the agent exited (${agent.exitCode ?? agent.signalCode}) while idling`);
      rssSamples.agent.push((await memory(agent.pid)).rss);
      rssSamples.bare.push((await memory(bare.pid)).rss);
    }
    const idleSeconds = (Date.now() - idleStart) / 1000;
    const cpu = { agent: (await cpuSeconds(agent.pid)) - cpuStart.agent, bare: (await cpuSeconds(bare.pid)) - cpuStart.bare };
    const totalCpu = { agent: await cpuSeconds(agent.pid), bare: await cpuSeconds(bare.pid) };
    const mem = { agent: await memory(agent.pid), bare: await memory(bare.pid) };
    const heartbeats = server.cp.heartbeatsOf(agentId).length;
    const requests = server.cp.requests.filter((r) => r.at >= idleStart).length;
    const exit = await stop(agent);
    await stop(bare);
    const startMs = await bareStartMs();
    say(`${FIRST_BEAT_SAMPLES - 1} more fresh starts for the first-heartbeat time`);
    const beats = [firstBeatMs, ...(await moreFirstBeats(server, dir, FIRST_BEAT_SAMPLES - 1))].sort((a, b) => a - b);
    const beatMax = beats.at(-1) ?? Number.NaN;
    const beatMedian = beats[Math.floor(beats.length / 2)] ?? Number.NaN;

    // The last 10 samples: idle RSS, not a single moment's garbage-collection state.
    const settled = (xs: number[]): number => Math.max(...xs.slice(-10));
    const rss = { agent: settled(rssSamples.agent), bare: settled(rssSamples.bare) };
    const cpuShare = cpu.agent / idleSeconds;
    const lines = [
      `footprint over ${Math.round(idleSeconds)} s idle (heartbeat every 30 s: ${heartbeats} heartbeats, ${requests} requests in the window; agent exit on SIGTERM ${exit})`,
      `  RSS          agent ${round(rss.agent / MB, 1)} MB (peak ${round(mem.agent.hwm / MB, 1)} MB), bare node ${round(rss.bare / MB, 1)} MB (peak ${round(mem.bare.hwm / MB, 1)} MB): +${round((rss.agent - rss.bare) / MB, 1)} MB (target ≤ +40 MB)`,
      `  CPU          agent ${round(cpu.agent, 3)} s (${round(cpuShare * 100, 3)} % of one core; ${round(totalCpu.agent, 2)} s since spawn), bare node ${round(cpu.bare, 3)} s (target ≤ 1 %)`,
      `  first beat   ${beatMedian} ms after spawn (median of ${beats.length} fresh starts; slowest ${beatMax} ms: ${beats.join(', ')}); a bare node prints its first byte after ${Math.round(startMs)} ms; target ≤ 1000 ms`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    const rows = [
      { name: 'footprint RSS (idle)', agent_mb: round(rss.agent / MB, 1), baseline_mb: round(rss.bare / MB, 1), ratio: round(rss.agent / rss.bare), target: '≤ bare + 40 MB', pass: rss.agent - rss.bare <= 40 * MB },
      { name: `footprint CPU (${Math.round(idleSeconds)} s idle)`, agent_s: round(cpu.agent, 3), baseline_s: round(cpu.bare, 3), ratio: cpu.bare > 0 ? round(cpu.agent / cpu.bare) : null, target: `≤ 1 % of a core (${round(idleSeconds / 100, 2)} s)`, pass: cpuShare <= 0.01 },
      { name: `first heartbeat after spawn (slowest of ${beats.length})`, agent_s: round(beatMax / 1000, 3), baseline_s: round(startMs / 1000, 3), ratio: round(beatMax / startMs), target: '≤ 1 s', pass: beatMax <= 1000 },
    ];
    const result = {
      name: 'footprint',
      agent_mb: rows[0]?.agent_mb,
      baseline_mb: rows[0]?.baseline_mb,
      ratio: rows[0]?.ratio,
      target: 'RSS ≤ bare + 40 MB, CPU ≤ 1 %, first heartbeat ≤ 1 s',
      pass: rows.every((row) => row.pass),
      cpu_percent: round(cpuShare * 100, 3),
      first_heartbeat_ms: beats,
      rows,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    for (const child of children) await stop(child);
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`footprint bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
