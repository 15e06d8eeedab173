import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const AGENT_BUNDLE = `${ROOT}dist/byteor-agent.cjs`;
const TSX_CLI = `${ROOT}node_modules/tsx/dist/cli.mjs`;

export function requireBuiltAgent(): void {
  if (!existsSync(AGENT_BUNDLE)) throw new Error(`${AGENT_BUNDLE} is missing: run \`npm run build\` first (npm test does it)`);
}

export interface ControlPlaneProcess {
  child: ChildProcess;
  info: { baseUrl: string; enrollmentToken: string; orgId: string; projectId: string; environmentId: string; adminUrl: string };
  admin<T>(path: string, init?: { method?: string; body?: unknown }): Promise<T>;
  stop(): Promise<void>;
}

/** Starts scripts/control-plane.ts as its own process on 127.0.0.1 and reads its JSON line. */
export async function startControlPlaneProcess(args: string[] = []): Promise<ControlPlaneProcess> {
  const child = spawn(process.execPath, [TSX_CLI, `${ROOT}scripts/control-plane.ts`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`control plane exited ${code}: ${stderr.join('')}`)));
  });
  const info = JSON.parse(first) as ControlPlaneProcess['info'];
  return {
    child,
    info,
    admin: async <T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> => {
      const res = await fetch(`${info.baseUrl}/_admin/${path}`, {
        method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
        headers: { 'content-type': 'application/json' },
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      });
      if (!res.ok) throw new Error(`admin ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    },
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface AgentRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the built agent to completion. */
export function runAgent(args: string[], env: NodeJS.ProcessEnv): Promise<AgentRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AGENT_BUNDLE, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Polls `check` until it returns a value, or fails after `timeoutMs` (e2e only: real processes). */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A minimal environment for child processes: no inherited secrets, no proxies. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', ...extra };
}
