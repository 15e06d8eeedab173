import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentClient } from '../../src/api/client.js';
import type { Deployment, Posture } from '../../src/api/types.js';
import { BundleDeploymentHandler, DeploymentReportsJob, type DeployOptions, type DeployStep } from '../../src/agent/deploy/index.js';
import { readCurrent } from '../../src/agent/deploy/activate.js';
import { Health } from '../../src/agent/health.js';
import { DeploymentJob } from '../../src/agent/jobs/deployment.js';
import { SigningKeysJob } from '../../src/agent/jobs/signing-keys.js';
import { KeyStore } from '../../src/agent/key-store.js';
import { createLogger } from '../../src/log.js';
import { StateStore, type AgentState } from '../../src/state/agent-state.js';
import type { StateLayout } from '../../src/state/layout.js';
import { openStateDir } from '../../src/state/state-dir.js';
import type { ControlPlane } from '../control-plane/control-plane.js';
import { LogCapture } from '../support/log-capture.js';
import { tempDir } from '../support/tmp.js';
import type { VirtualClock } from '../support/virtual-clock.js';

/**
 * One agent's deployment side, wired like the runtime wires it but driven step by step: each
 * fetch() is one run of the deployment job, each flush() one run of the report job. Building a
 * second one on the same state directory is a restart (everything is reloaded from disk).
 */
export interface DeployAgent {
  agentId: string;
  apiKey: string;
  stateDir: string;
  layout: StateLayout;
  store: StateStore;
  keys: KeyStore;
  health: Health;
  logs: LogCapture;
  handler: BundleDeploymentHandler;
  /** One deployment job run (fetch, then handle/reconcile/cleared). */
  fetch(signal?: AbortSignal): Promise<void>;
  /** One status-report job run. */
  flush(): Promise<void | 'idle'>;
  /** One signing-key job run. */
  refreshKeys(): Promise<void>;
  /** The bundle `current` points at. */
  current(): Promise<string | undefined>;
  state(): AgentState;
}

export interface AgentOptions {
  cp: ControlPlane;
  baseUrl: string;
  clock: VirtualClock;
  agent?: { agentId: string; apiKey: string };
  stateDir?: string;
  posture?: Posture | undefined;
  environmentId?: string | undefined;
  options?: DeployOptions;
  random?: () => number;
}

export async function deployAgent(opts: AgentOptions): Promise<DeployAgent> {
  const { cp, clock } = opts;
  const agent = opts.agent ?? cp.createAgent();
  const stateDir = opts.stateDir ?? (await tempDir('byteor-deploy-'));
  const layout = await openStateDir(stateDir);
  const logs = new LogCapture();
  const logger = createLogger({ level: 'debug', destination: logs });
  const now = (): number => clock.now();
  const store = await StateStore.open(layout.stateFile, logger, now);
  const keys = await KeyStore.open(layout.keysFile, logger, now);
  const client = new AgentClient({ baseUrl: new URL(opts.baseUrl), agentId: agent.agentId, apiKey: agent.apiKey, now });
  const health = new Health(logger, { agentId: agent.agentId, envFile: '/etc/byteor/agent.env', keyHint: 'test' }, now);
  const signingKeys = new SigningKeysJob(client, keys, logger, now);
  const reports = new DeploymentReportsJob(client, store, logger);
  const environmentId = 'environmentId' in opts ? opts.environmentId : cp.agent(agent.agentId).environmentId;
  const handler = new BundleDeploymentHandler(
    {
      client,
      store,
      keys,
      refreshKeys: (kid, signal) => signingKeys.refreshForUnknownKid(kid, signal),
      health,
      layout,
      logger,
      now,
      random: opts.random ?? (() => 0.5),
      identity: { environmentId, posture: 'posture' in opts ? opts.posture : 'dev' },
      triggerReports: () => undefined,
    },
    { durable: false, ...opts.options },
  );
  const job = new DeploymentJob(client, store, handler);
  return {
    ...agent,
    stateDir,
    layout,
    store,
    keys,
    health,
    logs,
    handler,
    fetch: (signal = new AbortController().signal) => job.run(signal),
    flush: () => reports.run(new AbortController().signal),
    refreshKeys: () => signingKeys.run(new AbortController().signal),
    current: () => readCurrent(layout),
    state: () => store.state,
  };
}

/** Status reports the control plane received for one deployment: [state, reason] pairs in order. */
export function reportsFor(cp: ControlPlane, deployment: Deployment | string): [string, string | null][] {
  const id = typeof deployment === 'string' ? deployment : deployment.deployment_id;
  return cp.statusReports.filter((r) => r.deploymentId === id).map((r) => [r.body.state, r.body.reason]);
}

/** Every path below `dir` (links not followed), sorted. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
      const path = rel === '' ? entry.name : `${rel}/${entry.name}`;
      out.push(path);
      if (entry.isDirectory()) await walk(path);
    }
  }
  await walk('');
  return out.sort();
}

/** The names in the bundles/ and downloads/ directories, and leftover temporary links. */
export async function cacheContents(layout: StateLayout): Promise<{ bundles: string[]; downloads: string[]; stray: string[] }> {
  const root = await readdir(layout.root);
  return {
    bundles: (await readdir(layout.bundlesDir)).sort(),
    downloads: (await readdir(layout.downloadsDir)).sort(),
    stray: root.filter((name) => name.startsWith('.current.tmp-')),
  };
}

/** Reads a file through the `current` link, as a consumer of the config would. */
export async function readThroughCurrent(layout: StateLayout, path: string): Promise<string> {
  await lstat(layout.currentLink);
  return readFile(join(layout.currentLink, path), 'utf8');
}

/** A hook that stalls forever at `step` (the process "dies" there) and says when it got there. */
export function crashAt(step: DeployStep): { onStep: (s: DeployStep) => Promise<void>; reached: Promise<void> } {
  let signal: () => void = () => undefined;
  const reached = new Promise<void>((resolve) => {
    signal = resolve;
  });
  return {
    reached,
    onStep: (s) => {
      if (s !== step) return Promise.resolve();
      signal();
      return new Promise<void>(() => undefined);
    },
  };
}
