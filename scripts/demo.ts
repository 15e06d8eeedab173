/**
 * The demo: the local control plane, one freshly enrolled agent with short intervals, and
 * human-readable logs, until Ctrl-C (or --seconds N).
 *
 *   npm run demo [-- --seconds 30]
 */
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startControlPlaneCli } from './control-plane.js';
import { prettyLine } from './demo/pretty.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const AGENT = join(ROOT, 'dist', 'byteor-agent.cjs');

function say(text: string): void {
  process.stderr.write(`\u001b[36m[demo]\u001b[0m ${text}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' } } });
  const seconds = values.seconds === undefined ? undefined : Number(values.seconds);

  const cp = await startControlPlaneCli(['--seed-deployment', join(ROOT, 'scripts', 'demo', 'bundle')], { stdout: { write: () => true }, stderr: { write: () => true } });
  const { info } = cp;
  say(`local control plane on ${info.baseUrl} (admin API ${info.adminUrl})`);
  say(`open ${info.baseUrl}/ in a browser: agents, deployments and artifacts, refreshed every 2 s`);

  const dir = await mkdtemp(join(tmpdir(), 'byteor-demo-'));
  const envFile = join(dir, 'agent.env');
  const stateDir = join(dir, 'state');
  say(`env file ${envFile}, state directory ${stateDir}`);

  const env = { ...process.env, BYTEOR_ENROLLMENT_TOKEN: info.enrollmentToken };
  const enrolled = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [AGENT, 'enroll', '--config', envFile, '--state-dir', stateDir, '--api-base-url', info.baseUrl, '--org', info.orgId, '--project', info.projectId, '--environment', info.environmentId, '--name', 'demo-node', '--label', 'purpose=demo'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', resolve);
  });
  if (enrolled !== 0) {
    say(`enrollment failed (exit ${enrolled})`);
    await cp.close();
    process.exit(1);
  }

  const { BYTEOR_ENROLLMENT_TOKEN: _token, ...runEnv } = env;
  const agent = spawn(process.execPath, [AGENT, 'run', '--config', envFile, '--state-dir', stateDir, '--dev-heartbeat-interval', '5', '--dev-deployment-interval', '10', '--dev-outbox-interval', '5', '--log-level', 'debug'], {
    env: runEnv,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const colour = process.stdout.isTTY === true;
  createInterface({ input: agent.stdout }).on('line', (line) => process.stdout.write(`${prettyLine(line, colour)}\n`));
  say(`agent running (pid ${agent.pid}); in another shell: node dist/byteor-agent.cjs status --config ${envFile} --state-dir ${stateDir}`);
  say(`drop a file into ${join(stateDir, 'outbox', 'incident_bundle')}/ (by rename) to see it uploaded; Ctrl-C to stop`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    say('stopping the agent (SIGTERM)…');
    agent.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  if (seconds !== undefined && seconds > 0) setTimeout(stop, seconds * 1000).unref();

  const code = await new Promise<number | null>((resolve) => agent.on('exit', (c) => resolve(c)));
  say(`agent exited with ${code}; stopping the control plane (state kept in ${dir})`);
  await cp.close();
  process.exit(code === 0 ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
