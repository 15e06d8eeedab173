import { readFile } from 'node:fs/promises';
import { keyHint } from '../agent/runtime.js';
import { pickEnvFile, requireIdentity, type Config, type ConfigFlags } from '../config/config.js';
import { loadCommandConfig } from './load-config.js';
import { ConfigError, errorMessage, ExitCode } from '../errors.js';
import { registerSecret, scrubSecrets } from '../log.js';
import { StateLayout } from '../state/layout.js';
import { readStatusFile } from '../state/status-file.js';
import type { CommandContext } from './context.js';
import { fail, pass, type CheckResult } from './doctor/check.js';
import { checkReadyz, judgeClockSkew, judgeKey, probeKey } from './doctor/control-plane.js';
import { findServiceAccount, gatherEnvFileFacts, judgeEnvFile, type ServiceAccount } from './doctor/env-file.js';
import { checkDiskFree, checkStateDir, checkSystemd, gatherOutbox, judgeOutbox, judgeReportedScopes, spawnCommand, type RunCommand } from './doctor/host.js';
import { checkDns, checkTls, systemLookup, type LookupAll } from './doctor/network.js';
import { judgeProxy, proxyFor } from './doctor/proxy.js';

export interface DoctorOptions extends ConfigFlags {
  json?: boolean | undefined;
}

/** Test seams; production uses the real resolver, Node's CA store, systemctl and /etc/passwd. */
export interface DoctorDeps {
  lookup?: LookupAll;
  /** Trusted CAs for the TLS check instead of Node's store (tests only). */
  ca?: string | Buffer;
  runCommand?: RunCommand;
  /** Our effective uid; process.geteuid() by default. */
  euid?: number | undefined;
  serviceAccount?: () => Promise<ServiceAccount | undefined>;
  now?: () => number;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A JSON file read without side effects (the agent's loaders move corrupt files aside; doctor never does). */
async function peekJson(path: string): Promise<Obj | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    return isObj(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

async function storedEtags(layout: StateLayout): Promise<{ deployment: string | undefined; signingKeys: string | undefined }> {
  const [state, keys] = await Promise.all([peekJson(layout.stateFile), peekJson(layout.keysFile)]);
  const etags = isObj(state?.etags) ? state.etags : {};
  return {
    deployment: typeof etags.deployment === 'string' ? etags.deployment : undefined,
    signingKeys: typeof keys?.etag === 'string' ? keys.etag : undefined,
  };
}

function configCheck(config: Config): CheckResult {
  try {
    const identity = requireIdentity(config);
    const env = config.environmentId === undefined ? '' : ` in environment ${config.environmentId}`;
    return pass('configuration', `valid: agent ${identity.agentId}${env}, API ${identity.apiBaseUrl.href}, state in ${config.stateDir}`);
  } catch (err) {
    if (err instanceof ConfigError) return fail('configuration', err.message.replace(/\. Fix: .*$/s, ''), err.fix);
    throw err;
  }
}

/** Runs every check (each read-only) and returns them in the order a human reads them. */
export async function runChecks(options: DoctorOptions, ctx: CommandContext, deps: DoctorDeps = {}): Promise<{ results: CheckResult[]; skipped: string | undefined }> {
  const now = deps.now ?? Date.now;
  const euid = 'euid' in deps ? deps.euid : process.geteuid?.();
  const serviceAccount = await (deps.serviceAccount ?? (() => findServiceAccount()))();
  const results: CheckResult[] = [];

  let config: Config | undefined;
  let configResult: CheckResult;
  try {
    config = await loadCommandConfig(options, ctx);
    registerSecret(config.apiKey);
    registerSecret(config.enrollmentToken);
    configResult = configCheck(config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    configResult = fail('configuration', err.message.replace(/\. Fix: .*$/s, ''), err.fix);
  }

  const envFile = config?.envFile ?? pickEnvFile(options, ctx.env);
  const fromElsewhere = (variable: string): boolean => config !== undefined && config.sources[variable] !== undefined && config.sources[variable] !== 'env file';
  const identityElsewhere = ['BYTEOR_API_BASE_URL', 'BYTEOR_AGENT_ID', 'BYTEOR_AGENT_API_KEY'].every(fromElsewhere);
  const facts = await gatherEnvFileFacts(envFile, { euid, serviceAccount, identityElsewhere });
  results.push(...judgeEnvFile(facts));
  results.push(configResult);
  if (config === undefined) return { results, skipped: 'network, key and state checks were not run: fix the configuration first' };

  const layout = new StateLayout(config.stateDir);
  const baseUrl = config.apiBaseUrl;
  if (baseUrl !== undefined) {
    const fromFile = Object.keys(config.proxyEnv).filter((key) => ctx.env[key] === undefined);
    results.push(judgeProxy(baseUrl, config.proxyEnv, fromFile));
    const proxy = proxyFor(baseUrl, config.proxyEnv);
    const lookup = deps.lookup ?? systemLookup;
    const dns = await checkDns(baseUrl, proxy, lookup);
    results.push(...dns);
    // Without an address there is nothing to shake hands with; the DNS line already says why.
    if (!dns.some((r) => r.status === 'fail')) results.push(await checkTls({ url: baseUrl, proxy, lookup, ca: deps.ca, allowInsecureHttp: config.allowInsecureHttp, now }));
    const readyz = await checkReadyz(baseUrl, { allowInsecureHttp: config.allowInsecureHttp, fetch: ctx.fetch, now, signal: ctx.signal });
    results.push(readyz.result);
    if (readyz.reachable) results.push(judgeClockSkew(readyz.skewMs));

    if (readyz.reachable && config.agentId !== undefined && config.apiKey !== undefined) {
      const probes = await probeKey({
        baseUrl,
        agentId: config.agentId,
        apiKey: config.apiKey,
        allowInsecureHttp: config.allowInsecureHttp,
        etags: await storedEtags(layout),
        fetch: ctx.fetch,
        signal: ctx.signal,
      });
      results.push(...judgeKey(probes, { agentId: config.agentId, keyHint: keyHint(config.apiKey), envFile: config.envFile }));
    }
  }

  if (config.agentId !== undefined) results.push(...judgeReportedScopes(await readStatusFile(layout.statusFile), now()));
  const stateDir = await checkStateDir(config.stateDir, { euid, serviceAccount });
  results.push(...stateDir.results);
  if (stateDir.exists) {
    results.push(await checkDiskFree(config.stateDir));
    results.push(...judgeOutbox(await gatherOutbox(layout, now()), layout));
  }
  const unit = await checkSystemd(deps.runCommand ?? spawnCommand);
  if (unit !== undefined) results.push(unit);
  return { results, skipped: undefined };
}

const LABEL = { pass: 'PASS', warn: 'WARN', fail: 'FAIL' } as const;

export function renderChecks(results: readonly CheckResult[], skipped: string | undefined): string {
  const width = Math.max(...results.map((r) => r.name.length)) + 2;
  const lines = results.map((r) => `${LABEL[r.status]}  ${r.name.padEnd(width)}${r.detail}${r.fix === undefined ? '' : ` → fix: ${r.fix}`}`);
  const count = (status: CheckResult['status']): number => results.filter((r) => r.status === status).length;
  lines.push('');
  lines.push(`${count('fail')} failed, ${count('warn')} warning(s), ${count('pass')} passed${skipped === undefined ? '' : `; ${skipped}`}`);
  return lines.join('\n');
}

/** `byteor-agent doctor`: every check read-only; exit 1 when any fails. */
export async function runDoctor(options: DoctorOptions, ctx: CommandContext, deps: DoctorDeps = {}): Promise<number> {
  let outcome;
  try {
    outcome = await runChecks(options, ctx, deps);
  } catch (err) {
    // A check that throws is a bug in doctor, not a finding about the host: say so plainly.
    ctx.stderr(`byteor-agent doctor: a check failed unexpectedly: ${errorMessage(err)}`);
    return ExitCode.software;
  }
  // Nothing above prints a credential; scrubbing is the second line of defence, as for logs.
  if (options.json === true) ctx.stdout(scrubSecrets(JSON.stringify(outcome.results, null, 2)));
  else ctx.stdout(scrubSecrets(renderChecks(outcome.results, outcome.skipped)));
  return outcome.results.some((r) => r.status === 'fail') ? ExitCode.failure : ExitCode.ok;
}
