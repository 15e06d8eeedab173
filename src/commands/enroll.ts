import { randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { enrollAgent } from '../api/client.js';
import { ApiError, ForbiddenError, PermanentError, UnauthorizedError } from '../api/errors.js';
import { withRetries } from '../api/retry.js';
import { Transport } from '../api/transport.js';
import type { EnrollResponse } from '../api/types.js';
import { requireApiBaseUrl, type Config, type ConfigFlags } from '../config/config.js';
import { loadCommandConfig } from './load-config.js';
import { EnvFileValueError, writeEnvFile } from '../config/env-file.js';
import { AgentError, ConfigError, ExitCode } from '../errors.js';
import { hostMetadata } from '../host/metadata.js';
import { createLogger, registerSecret, type Logger } from '../log.js';
import type { CommandContext } from './context.js';

export interface EnrollOptions extends ConfigFlags {
  tokenFile?: string | undefined;
  force?: boolean | undefined;
  ifNeeded?: boolean | undefined;
}

/**
 * Kept in the env file between attempts so that a retry after a crash or a lost response,
 * even from a new process, is the same enrollment and does not burn the single-use token.
 */
const IDEMPOTENCY_VARIABLE = 'BYTEOR_ENROLLMENT_IDEMPOTENCY_KEY';

const ENROLL_ATTEMPTS = 6;
const ENROLL_MAX_RETRY_MS = 3 * 60_000;

async function readTokenFile(path: string, ctx: CommandContext): Promise<string> {
  let text: string;
  try {
    if (path === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of ctx.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
      text = Buffer.concat(chunks).toString('utf8');
    } else {
      const info = await stat(path);
      if ((info.mode & 0o004) !== 0) ctx.stderr(`warning: token file ${path} is readable by every user; keep it mode 0600 and delete it after enrolling`);
      text = await readFile(path, 'utf8');
    }
  } catch (err) {
    throw new ConfigError({
      variable: 'BYTEOR_ENROLLMENT_TOKEN',
      source: `--token-file ${path}`,
      problem: `could not be read from the token file (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      fix: 'pass a readable file holding only the token, or - to read it from standard input',
    });
  }
  const token = text.trim();
  if (!/^[\x21-\x7e]{8,4096}$/.test(token)) {
    throw new ConfigError({
      variable: 'BYTEOR_ENROLLMENT_TOKEN',
      source: `--token-file ${path}`,
      problem: 'is malformed in the token file (expected one line of 8 to 4096 visible characters)',
      fix: 'put exactly the token from the ByteOr console into the file',
    });
  }
  return token;
}

function requireEnrollmentTarget(config: Config): { orgId: string; projectId: string; environmentId: string } {
  const where = config.envFileExists ? `not set in ${config.envFile}, the environment or a flag` : `not set (${config.envFile} does not exist yet)`;
  const need = (variable: string, flag: string, value: string | undefined): string => {
    if (value !== undefined) return value;
    throw new ConfigError({ variable, source: where, problem: 'is required to enroll', fix: `pass ${flag} (shown next to the token in the ByteOr console) or set ${variable}` });
  };
  return {
    orgId: need('BYTEOR_ORG_ID', '--org', config.orgId),
    projectId: need('BYTEOR_PROJECT_ID', '--project', config.projectId),
    environmentId: need('BYTEOR_ENVIRONMENT_ID', '--environment', config.environmentId),
  };
}

/** Turns a refusal into the one message a sysadmin needs: what it means for a token, what to do. */
function explainRefusal(err: ApiError, target: { orgId: string; projectId: string; environmentId: string }): AgentError {
  const id = err.requestId === undefined ? '' : ` (request ${err.requestId})`;
  if (err instanceof UnauthorizedError) {
    return new AgentError(
      `enrollment refused (401): the enrollment token is unknown, expired or already used${id}. ` +
        'Tokens are single-use and short-lived: create a new one in the ByteOr console for this environment and run enroll again.',
      ExitCode.noPermission,
    );
  }
  if (err instanceof ForbiddenError) {
    return new AgentError(
      `enrollment refused (403): the token is valid but may not enroll into ${target.orgId}/${target.projectId}/${target.environmentId}${id}. ` +
        'It lacks the agent:enroll scope or belongs to another environment: check --org, --project and --environment against the token, or create an enrollment token for this environment.',
      ExitCode.noPermission,
    );
  }
  if (err instanceof PermanentError) {
    return new AgentError(
      `enrollment rejected (${err.status ?? 'error'}): ${err.serverMessage ?? 'the control plane refused the request'}${id}. Fix the value it names and run enroll again.`,
      ExitCode.dataError,
    );
  }
  return new AgentError(
    `could not enroll: ${err.message}. Nothing was lost: run the same command again (within 24 h it resumes the same enrollment).`,
    ExitCode.unavailable,
  );
}

function describeIdentity(config: Config): string {
  const name = config.agentName === undefined ? '' : ` (${config.agentName})`;
  return `${config.agentId ?? '?'}${name} at ${config.apiBaseUrl?.origin ?? '?'}`;
}

export async function runEnroll(options: EnrollOptions, ctx: CommandContext): Promise<number> {
  if (options.force === true && options.ifNeeded === true) {
    throw new AgentError('--force and --if-needed contradict each other: pass one of them', ExitCode.usage);
  }
  const config = await loadCommandConfig(options, ctx);
  const logger: Logger = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel, ...(ctx.logDestination ? { destination: ctx.logDestination } : {}) });

  if (config.agentId !== undefined && config.apiKey !== undefined && options.force !== true) {
    if (options.ifNeeded !== true) {
      ctx.stdout(`Already enrolled as ${describeIdentity(config)} (${config.envFile}). Nothing to do; pass --force to re-enroll with a new token.`);
    }
    return ExitCode.ok;
  }

  const apiBaseUrl = requireApiBaseUrl(config);
  const target = requireEnrollmentTarget(config);
  const token = options.tokenFile !== undefined ? await readTokenFile(options.tokenFile, ctx) : config.enrollmentToken;
  if (token === undefined) {
    throw new ConfigError({
      variable: 'BYTEOR_ENROLLMENT_TOKEN',
      source: config.envFileExists ? `not set in ${config.envFile} or the environment` : 'not set in the environment',
      problem: 'is required to enroll',
      fix: 'export BYTEOR_ENROLLMENT_TOKEN=… (never pass it as an argument), or use --token-file PATH|-',
    });
  }
  registerSecret(token);

  // Write what we know first: proves the env file is writable before the single-use token is
  // spent, and persists the idempotency key for a retry from a later process.
  const idempotencyKey = (await existingIdempotencyKey(config)) ?? randomUUID();
  try {
    await writeEnvFile(config.envFile, {
      BYTEOR_API_BASE_URL: apiBaseUrl.href.replace(/\/$/, ''),
      BYTEOR_ORG_ID: target.orgId,
      BYTEOR_PROJECT_ID: target.projectId,
      BYTEOR_ENVIRONMENT_ID: target.environmentId,
      [IDEMPOTENCY_VARIABLE]: idempotencyKey,
    });
  } catch (err) {
    throw envFileWriteError(config.envFile, err);
  }

  const host = await hostMetadata();
  const transport = new Transport({ baseUrl: apiBaseUrl, allowInsecureHttp: config.allowInsecureHttp, ...(ctx.fetch ? { fetch: ctx.fetch } : {}) });
  let enrolled: EnrollResponse;
  try {
    enrolled = await withRetries(
      () =>
        enrollAgent(transport, {
          ...target,
          token,
          idempotencyKey,
          request: {
            ...(config.agentName === undefined ? {} : { name: config.agentName }),
            hostname: host.hostname,
            os: host.os,
            arch: host.arch,
            runtime: host.runtime,
            labels: config.labels,
          },
          signal: ctx.signal,
        }),
      {
        attempts: ENROLL_ATTEMPTS,
        maxRetryTimeMs: ENROLL_MAX_RETRY_MS,
        signal: ctx.signal,
        onRetry: ({ attempt, error, waitMs }) =>
          logger.warn({ attempt, ...error.toLogFields(), waitMs }, `enrollment attempt ${attempt} failed (${error.message}); retrying`),
      },
    );
  } catch (err) {
    if (err instanceof ApiError) throw explainRefusal(err, target);
    throw err;
  }
  registerSecret(enrolled.api_key);

  try {
    await writeEnvFile(config.envFile, {
      BYTEOR_AGENT_ID: enrolled.agent_id,
      BYTEOR_AGENT_API_KEY: enrolled.api_key,
      BYTEOR_ORG_ID: enrolled.org_id,
      BYTEOR_PROJECT_ID: enrolled.project_id,
      BYTEOR_ENVIRONMENT_ID: enrolled.environment_id,
      BYTEOR_ENVIRONMENT_POSTURE: enrolled.environment_posture,
      BYTEOR_ENROLLMENT_TOKEN: null,
      [IDEMPOTENCY_VARIABLE]: null,
    });
  } catch (err) {
    // The server has enrolled us; the key kept in the file lets a re-run within 24 h recover the
    // same identity, so say exactly that rather than "try again with a new token".
    throw new AgentError(
      `enrolled as ${enrolled.agent_id}, but saving the identity to ${config.envFile} failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). ` +
        'Free space or fix permissions, then run the same enroll command again within 24 h: it recovers this identity with the same token.',
      ExitCode.software,
    );
  }

  const name = enrolled.name === '' ? '' : ` (${enrolled.name})`;
  ctx.stdout(
    `Enrolled as ${enrolled.agent_id}${name} in ${enrolled.org_id}/${enrolled.project_id}/${enrolled.environment_id} (${enrolled.environment_posture}). ` +
      `Identity saved to ${config.envFile}; the enrollment token is no longer needed.`,
  );
  logger.info({ agentId: enrolled.agent_id, envFile: config.envFile }, 'enrolled');
  return ExitCode.ok;
}

async function existingIdempotencyKey(config: Config): Promise<string | undefined> {
  try {
    const text = await readFile(config.envFile, 'utf8');
    const match = new RegExp(`^${IDEMPOTENCY_VARIABLE}='([0-9a-f-]{36})'$`, 'm').exec(text);
    return match?.[1];
  } catch {
    return undefined;
  }
}

function envFileWriteError(path: string, err: unknown): AgentError {
  if (err instanceof EnvFileValueError) {
    return new ConfigError({ variable: err.key, source: `to be written to ${path}`, problem: err.message.replace(`${err.key} `, ''), fix: 'remove single quotes, line breaks and trailing backslashes from the value' });
  }
  const code = (err as NodeJS.ErrnoException).code;
  const fix = code === 'EACCES' || code === 'EPERM' ? 'run enroll as root (the env file is root-owned)' : code === 'ENOENT' ? `create the directory of ${path} first` : 'check the disk and the path';
  return new ConfigError({ variable: 'BYTEOR_ENV_FILE', source: path, problem: `names a file that cannot be written (${code ?? 'error'}); the enrollment token was not used`, fix });
}
