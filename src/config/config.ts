import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { parseEnvText } from './env-file.js';
import { parseBaseUrl } from './base-url.js';
import { ConfigError } from '../errors.js';
import { parseLabels, type Labels } from './labels.js';

export const DEFAULT_ENV_FILE = '/etc/byteor/agent.env';
export const DEFAULT_STATE_DIR = '/var/lib/byteor-agent';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Proxy variables honoured from the process environment and, failing that, the env file. */
export const PROXY_VARIABLES = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'] as const;

export const POSTURES = ['dev', 'staging', 'prod'] as const;
export type EnvironmentPosture = (typeof POSTURES)[number];

/** Values given on the command line; each maps to one variable of DESIGN.md's table. */
export interface ConfigFlags {
  config?: string | undefined;
  apiBaseUrl?: string | undefined;
  org?: string | undefined;
  project?: string | undefined;
  environment?: string | undefined;
  name?: string | undefined;
  label?: string[] | undefined;
  stateDir?: string | undefined;
  logLevel?: string | undefined;
  insecureHttp?: boolean | undefined;
}

const FLAG_OF: Record<string, string> = {
  BYTEOR_API_BASE_URL: '--api-base-url',
  BYTEOR_ORG_ID: '--org',
  BYTEOR_PROJECT_ID: '--project',
  BYTEOR_ENVIRONMENT_ID: '--environment',
  BYTEOR_AGENT_NAME: '--name',
  BYTEOR_AGENT_LABELS: '--label',
  BYTEOR_STATE_DIR: '--state-dir',
  BYTEOR_LOG_LEVEL: '--log-level',
  BYTEOR_ALLOW_INSECURE_HTTP: '--insecure-http',
};

export type ValueSource = 'flag' | 'environment' | 'env file' | 'default';

export interface Config {
  envFile: string;
  envFileExists: boolean;
  apiBaseUrl: URL | undefined;
  allowInsecureHttp: boolean;
  agentId: string | undefined;
  apiKey: string | undefined;
  orgId: string | undefined;
  projectId: string | undefined;
  environmentId: string | undefined;
  enrollmentToken: string | undefined;
  /** Written by enrollment from the control plane's answer; staging/prod require approvals. */
  environmentPosture: EnvironmentPosture | undefined;
  agentName: string | undefined;
  labels: Labels;
  stateDir: string;
  logLevel: LogLevel;
  /**
   * HTTPS_PROXY, HTTP_PROXY, NO_PROXY (and their lowercase forms) as the agent applies them:
   * the process environment wins, the env file fills in. Names not set anywhere are absent.
   */
  proxyEnv: Readonly<Record<string, string>>;
  /** Where each variable's value came from, for error messages and `doctor`. */
  sources: Readonly<Record<string, ValueSource>>;
}

export interface LoadConfigInput {
  flags?: ConfigFlags;
  env?: NodeJS.ProcessEnv;
}

/** IDs go into URL paths, so they are held to a path-safe alphabet. */
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
/** Credentials go into an HTTP header: visible ASCII, no spaces. */
const CREDENTIAL_PATTERN = /^[\x21-\x7e]{8,4096}$/;

function flagValues(flags: ConfigFlags): Record<string, string | undefined> {
  return {
    BYTEOR_API_BASE_URL: flags.apiBaseUrl,
    BYTEOR_ORG_ID: flags.org,
    BYTEOR_PROJECT_ID: flags.project,
    BYTEOR_ENVIRONMENT_ID: flags.environment,
    BYTEOR_AGENT_NAME: flags.name,
    BYTEOR_AGENT_LABELS: flags.label === undefined || flags.label.length === 0 ? undefined : flags.label.join(','),
    BYTEOR_STATE_DIR: flags.stateDir,
    BYTEOR_LOG_LEVEL: flags.logLevel,
    BYTEOR_ALLOW_INSECURE_HTTP: flags.insecureHttp === true ? '1' : undefined,
  };
}

class Resolver {
  readonly sources: Record<string, ValueSource> = {};

  constructor(
    private readonly flags: Record<string, string | undefined>,
    private readonly env: NodeJS.ProcessEnv,
    private readonly file: Record<string, string>,
    readonly envFile: string,
  ) {}

  /** flag > process environment > env file; empty strings count as unset. */
  get(variable: string): string | undefined {
    const candidates: [ValueSource, string | undefined][] = [
      ['flag', this.flags[variable]],
      ['environment', this.env[variable]],
      ['env file', this.file[variable]],
    ];
    for (const [source, value] of candidates) {
      if (value !== undefined && value !== '') {
        this.sources[variable] = source;
        return value;
      }
    }
    return undefined;
  }

  describe(variable: string): string {
    switch (this.sources[variable]) {
      case 'flag':
        return `from ${FLAG_OF[variable] ?? 'a flag'}`;
      case 'environment':
        return 'from the process environment';
      case 'env file':
        return `in ${this.envFile}`;
      default:
        return `not set in ${this.envFile}, the environment or a flag`;
    }
  }

  fail(variable: string, problem: string, fix: string): never {
    throw new ConfigError({ variable, source: this.describe(variable), problem, fix });
  }
}

function envFileFix(variable: string, envFile: string, example: string): string {
  const flag = FLAG_OF[variable];
  return `set ${variable}='${example}' in ${envFile}${flag === undefined ? '' : ` or pass ${flag}`}`;
}

async function readEnvFileForConfig(path: string): Promise<{ values: Record<string, string>; exists: boolean }> {
  try {
    const text = await readFile(path, 'utf8');
    return { values: parseEnvText(text), exists: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { values: {}, exists: false };
    const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (code ?? 'unreadable');
    throw new ConfigError({
      variable: 'BYTEOR_ENV_FILE',
      source: path,
      problem: `names a file that cannot be read (${why})`,
      fix: code === 'EISDIR' ? 'point --config at the agent.env file itself' : 'run as root, or as a member of the group that owns the file (mode 0640)',
    });
  }
}

export function pickEnvFile(flags: ConfigFlags, env: NodeJS.ProcessEnv): string {
  const chosen = flags.config ?? (env.BYTEOR_ENV_FILE !== undefined && env.BYTEOR_ENV_FILE !== '' ? env.BYTEOR_ENV_FILE : DEFAULT_ENV_FILE);
  return resolve(chosen);
}

function defaultStateDir(env: NodeJS.ProcessEnv): string {
  // systemd's StateDirectory= exports STATE_DIRECTORY, colon-separated when several are listed.
  const fromSystemd = env.STATE_DIRECTORY?.split(':')[0];
  return fromSystemd !== undefined && fromSystemd !== '' ? fromSystemd : DEFAULT_STATE_DIR;
}

/**
 * Loads and validates everything that is set. Presence of what a command needs is checked
 * separately (requireApiBaseUrl, requireIdentity, requireEnrollment) since `status` needs far
 * less than `run`.
 */
export async function loadConfig(input: LoadConfigInput = {}): Promise<Config> {
  const flags = input.flags ?? {};
  const env = input.env ?? process.env;
  const envFile = pickEnvFile(flags, env);
  const file = await readEnvFileForConfig(envFile);
  // Annotated so TypeScript treats r.fail() (returns never) as ending the branch.
  const r: Resolver = new Resolver(flagValues(flags), env, file.values, envFile);

  const insecureRaw = r.get('BYTEOR_ALLOW_INSECURE_HTTP');
  let allowInsecureHttp = false;
  if (insecureRaw !== undefined) {
    const normalized = insecureRaw.toLowerCase();
    if (['1', 'true', 'yes'].includes(normalized)) allowInsecureHttp = true;
    else if (!['0', 'false', 'no'].includes(normalized)) {
      r.fail('BYTEOR_ALLOW_INSECURE_HTTP', `is not a boolean ("${insecureRaw}")`, 'use 1 or 0 (or remove it; https is the default)');
    }
  }

  let apiBaseUrl: URL | undefined;
  const baseRaw = r.get('BYTEOR_API_BASE_URL');
  if (baseRaw !== undefined) {
    const parsed = parseBaseUrl(baseRaw, allowInsecureHttp);
    if ('problem' in parsed) {
      r.fail('BYTEOR_API_BASE_URL', parsed.problem, 'use the https:// API origin from the ByteOr console, e.g. https://api.byteor.com (plain http:// only to loopback, or with --insecure-http)');
    }
    apiBaseUrl = parsed.url;
  }

  const id = (variable: string, example: string): string | undefined => {
    const value = r.get(variable);
    if (value !== undefined && !ID_PATTERN.test(value)) {
      r.fail(variable, `is not a valid ID ("${value}"; letters, digits, _ and -, at most 128)`, envFileFix(variable, envFile, example));
    }
    return value;
  };
  const credential = (variable: string, fix: string): string | undefined => {
    const value = r.get(variable);
    // Never echo a credential back, even a malformed one.
    if (value !== undefined && !CREDENTIAL_PATTERN.test(value)) r.fail(variable, 'is malformed (expected 8 to 4096 visible ASCII characters, no spaces)', fix);
    return value;
  };

  const agentId = id('BYTEOR_AGENT_ID', 'agt_…');
  const apiKey = credential('BYTEOR_AGENT_API_KEY', 're-enroll with `byteor-agent enroll --force` to get a fresh runtime key');
  const orgId = id('BYTEOR_ORG_ID', 'org_…');
  const projectId = id('BYTEOR_PROJECT_ID', 'prj_…');
  const environmentId = id('BYTEOR_ENVIRONMENT_ID', 'env_…');
  const enrollmentToken = credential('BYTEOR_ENROLLMENT_TOKEN', 'copy a fresh enrollment token from the ByteOr console');

  const postureRaw = r.get('BYTEOR_ENVIRONMENT_POSTURE');
  if (postureRaw !== undefined && !(POSTURES as readonly string[]).includes(postureRaw)) {
    r.fail('BYTEOR_ENVIRONMENT_POSTURE', `is not dev, staging or prod ("${postureRaw}")`, 're-enroll with `byteor-agent enroll --force`, which writes it from the control plane');
  }

  const agentName = r.get('BYTEOR_AGENT_NAME');
  if (agentName !== undefined && (agentName.length > 128 || /[\0-\x1f\x7f]/.test(agentName))) {
    r.fail('BYTEOR_AGENT_NAME', 'must be at most 128 characters with no control characters', 'choose a shorter name, or leave it unset to derive one from the hostname');
  }

  let labels: Labels = {};
  const labelsRaw = r.get('BYTEOR_AGENT_LABELS');
  if (labelsRaw !== undefined) {
    const parsed = parseLabels(labelsRaw);
    if ('problem' in parsed) r.fail('BYTEOR_AGENT_LABELS', `is invalid: ${parsed.problem}`, "write labels as k=v,k2=v2 with keys matching ^[a-z0-9][a-z0-9_.-]{0,62}$ and values of at most 256 characters");
    labels = parsed.labels;
  }

  const stateDirRaw = r.get('BYTEOR_STATE_DIR') ?? defaultStateDir(env);
  // A path typed on the command line means "from here"; one in a file or the environment has no
  // obvious base, so it must be absolute.
  const stateDir = r.sources.BYTEOR_STATE_DIR === 'flag' ? resolve(stateDirRaw) : stateDirRaw;
  if (!isAbsolute(stateDir)) {
    r.fail('BYTEOR_STATE_DIR', `is not an absolute path ("${stateDir}")`, envFileFix('BYTEOR_STATE_DIR', envFile, DEFAULT_STATE_DIR));
  }

  const levelRaw = r.get('BYTEOR_LOG_LEVEL') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(levelRaw)) {
    r.fail('BYTEOR_LOG_LEVEL', `is not a log level ("${levelRaw}")`, `use one of ${LOG_LEVELS.join(', ')}`);
  }

  const proxyEnv: Record<string, string> = {};
  for (const name of PROXY_VARIABLES) {
    const value = env[name] ?? file.values[name];
    if (value === undefined) continue;
    if (value !== '' && !['NO_PROXY', 'no_proxy'].includes(name)) {
      let url: URL | undefined;
      try {
        url = new URL(value);
      } catch {
        url = undefined;
      }
      const source = env[name] !== undefined ? 'from the process environment' : `in ${envFile}`;
      // The value may hold proxy credentials: never echo it.
      if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
        throw new ConfigError({ variable: name, source, problem: 'is not an http:// or https:// proxy URL', fix: `set ${name}='http://proxy.example:3128' (credentials as http://user:password@proxy:3128)` });
      }
    }
    proxyEnv[name] = value;
  }

  return {
    envFile,
    envFileExists: file.exists,
    apiBaseUrl,
    allowInsecureHttp,
    agentId,
    apiKey,
    orgId,
    projectId,
    environmentId,
    enrollmentToken,
    environmentPosture: postureRaw as EnvironmentPosture | undefined,
    agentName,
    labels,
    stateDir,
    logLevel: levelRaw as LogLevel,
    proxyEnv,
    sources: { ...r.sources },
  };
}

function missing(config: Config, variable: string, fix: string): ConfigError {
  const where = config.envFileExists ? `not set in ${config.envFile}, the environment or a flag` : `not set (${config.envFile} does not exist)`;
  return new ConfigError({ variable, source: where, problem: 'is required', fix });
}

export function requireApiBaseUrl(config: Config): URL {
  if (config.apiBaseUrl === undefined) {
    throw missing(config, 'BYTEOR_API_BASE_URL', envFileFix('BYTEOR_API_BASE_URL', config.envFile, 'https://api.byteor.com'));
  }
  return config.apiBaseUrl;
}

export interface RuntimeIdentity {
  apiBaseUrl: URL;
  agentId: string;
  apiKey: string;
}

/** What `run` and the other runtime commands need: written by `byteor-agent enroll`. */
export function requireIdentity(config: Config): RuntimeIdentity {
  const apiBaseUrl = requireApiBaseUrl(config);
  const enrollFix = `enroll this host first: BYTEOR_ENROLLMENT_TOKEN=… byteor-agent enroll --config ${config.envFile}`;
  if (config.agentId === undefined) throw missing(config, 'BYTEOR_AGENT_ID', enrollFix);
  if (config.apiKey === undefined) throw missing(config, 'BYTEOR_AGENT_API_KEY', enrollFix);
  return { apiBaseUrl, agentId: config.agentId, apiKey: config.apiKey };
}
