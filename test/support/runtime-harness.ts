import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentRuntime, type RuntimeOptions } from '../../src/agent/runtime.js';
import { createLogger } from '../../src/log.js';
import { openStateDir } from '../../src/state/state-dir.js';
import type { ControlPlane } from '../control-plane/control-plane.js';
import { LogCapture } from './log-capture.js';
import { tempDir } from './tmp.js';
import { seededRandom, VirtualClock } from './virtual-clock.js';

export interface HarnessOptions {
  cp: ControlPlane;
  baseUrl: string;
  /** Reuse an identity and state directory (a restart); fresh ones otherwise. */
  agent?: { agentId: string; apiKey: string };
  stateDir?: string;
  clock?: VirtualClock;
  random?: () => number;
  logs?: LogCapture;
  scopes?: string[];
  extra?: Partial<Pick<RuntimeOptions, 'intervals' | 'deploymentHandler' | 'extraJobs' | 'outbox'>>;
}

export interface Harness {
  runtime: AgentRuntime;
  clock: VirtualClock;
  logs: LogCapture;
  stateDir: string;
  agentId: string;
  apiKey: string;
  /** Advance virtual time, letting every fired job finish before the next timer. */
  advance(ms: number): Promise<void>;
  readJson(name: string): Promise<Record<string, unknown>>;
}

/** A runtime wired to the in-process fake control plane, on virtual time, logging into memory. */
export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const { cp, baseUrl } = options;
  const agent = options.agent ?? cp.createAgent(options.scopes === undefined ? {} : { scopes: options.scopes });
  const stateDir = options.stateDir ?? (await tempDir('byteor-state-'));
  const clock = options.clock ?? new VirtualClock();
  const logs = options.logs ?? new LogCapture();
  const layout = await openStateDir(stateDir);
  const runtime = await AgentRuntime.create({
    identity: {
      apiBaseUrl: new URL(baseUrl),
      agentId: agent.agentId,
      apiKey: agent.apiKey,
      envFile: '/etc/byteor/agent.env',
      allowInsecureHttp: false,
      environmentId: cp.agent(agent.agentId).environmentId,
      environmentPosture: 'dev',
    },
    layout,
    logger: createLogger({ level: 'debug', destination: logs }),
    clock,
    random: options.random ?? seededRandom(42),
    ...options.extra,
  });
  const settle = (): Promise<void> => runtime.scheduler.whenIdle();
  return {
    runtime,
    clock,
    logs,
    stateDir,
    agentId: agent.agentId,
    apiKey: agent.apiKey,
    advance: (ms) => clock.advance(ms, settle),
    readJson: async (name) => JSON.parse(await readFile(join(stateDir, name), 'utf8')) as Record<string, unknown>,
  };
}
