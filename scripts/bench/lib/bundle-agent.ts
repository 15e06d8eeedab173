/**
 * The agent side of scripts/bench/bundle.ts, run as its own process (bundled by esbuild, like the
 * shipped agent) so its peak RSS is its own: one run of the deployment job with the production
 * pipeline and settings (real dispatcher, durable extraction), against the control plane named in
 * BENCH_AGENT (JSON: baseUrl, agentId, apiKey, stateDir). Prints one JSON line.
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { BundleDeploymentHandler } from '../../../src/agent/deploy/handler.js';
import { readCurrent } from '../../../src/agent/deploy/activate.js';
import { Health } from '../../../src/agent/health.js';
import { DeploymentJob } from '../../../src/agent/jobs/deployment.js';
import { SigningKeysJob } from '../../../src/agent/jobs/signing-keys.js';
import { KeyStore } from '../../../src/agent/key-store.js';
import { AgentClient } from '../../../src/api/client.js';
import { installHttpDispatcher } from '../../../src/api/dispatcher.js';
import { createLogger } from '../../../src/log.js';
import { StateStore } from '../../../src/state/agent-state.js';
import { openStateDir } from '../../../src/state/state-dir.js';

interface Config {
  baseUrl: string;
  agentId: string;
  apiKey: string;
  stateDir: string;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.BENCH_AGENT ?? '{}') as Config;
  installHttpDispatcher();
  // When each step of the pipeline was reached, in seconds since the job started.
  const steps: Record<string, number> = {};
  let downloadPeakKb = 0;
  let started = performance.now();
  const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void process.stderr.write(line) } });
  const now = (): number => Date.now();
  const layout = await openStateDir(config.stateDir);
  const store = await StateStore.open(layout.stateFile, logger, now);
  const keys = await KeyStore.open(layout.keysFile, logger, now);
  const client = new AgentClient({ baseUrl: new URL(config.baseUrl), agentId: config.agentId, apiKey: config.apiKey, allowInsecureHttp: false, now });
  const health = new Health(logger, { agentId: config.agentId, envFile: '-', keyHint: '-' }, now);
  const signingKeys = new SigningKeysJob(client, keys, logger, now);
  const handler = new BundleDeploymentHandler({
    client,
    store,
    keys,
    refreshKeys: (kid, signal) => signingKeys.refreshForUnknownKid(kid, signal),
    health,
    layout,
    logger,
    now,
    random: Math.random,
    identity: { environmentId: undefined, posture: 'dev' },
    triggerReports: () => undefined,
  }, {
    durable: process.env.BENCH_DURABLE !== '0',
    onStep: async (step) => {
      steps[step] = (performance.now() - started) / 1000;
      if (step === 'downloaded') downloadPeakKb = await peakRssKb();
    },
  });
  const job = new DeploymentJob(client, store, handler);

  started = performance.now();
  await job.run(new AbortController().signal);
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ seconds, steps, downloadPeakKb, maxRssKb: await peakRssKb(), current: (await readCurrent(layout)) ?? null, failed: store.state.deployment.failed })}\n`);
}

/**
 * This process's own peak RSS: VmHWM of its memory map. Not getrusage's maxrss, which on Linux
 * carries over the RSS of the parent at fork time across exec (here the benchmark, which holds the
 * whole bundle in memory), so it would report the parent's size.
 */
async function peakRssKb(): Promise<number> {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(await readFile('/proc/self/status', 'utf8'));
    if (match !== null) return Number(match[1]);
  } catch {
    // Not Linux: fall back to getrusage.
  }
  return process.resourceUsage().maxRSS;
}

main().catch((err: unknown) => {
  process.stderr.write(`bundle-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
