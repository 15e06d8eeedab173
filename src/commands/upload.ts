import { mkdtemp, open, readdir, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { placeInOutbox, entryNameFor } from '../agent/outbox/place.js';
import { contentTypeFor, type Prepared } from '../agent/outbox/prepare.js';
import { sendArtifact } from '../agent/outbox/send.js';
import { AgentClient } from '../api/client.js';
import { ApiError, PermanentError } from '../api/errors.js';
import { withRetries, type RetryOptions } from '../api/retry.js';
import { ARTIFACT_TYPES, MAX_ARTIFACT_BYTES, type ArtifactResponse, type ArtifactType } from '../api/types.js';
import { PackError, packDirectory } from '../archive/pack.js';
import { requireIdentity, type Config, type ConfigFlags } from '../config/config.js';
import { loadCommandConfig } from './load-config.js';
import { AbortedError, AgentError, ExitCode, errorMessage } from '../errors.js';
import { registerSecret } from '../log.js';
import { StateLayout } from '../state/layout.js';
import { sha256File } from '../util/hash-file.js';
import { formatBytes } from '../util/format.js';
import type { CommandContext } from './context.js';
import { progressBar } from './progress.js';

export interface UploadOptions extends ConfigFlags {
  type?: string | undefined;
  now?: boolean | undefined;
  move?: boolean | undefined;
}

/** Test seams: retry pacing (Retry-After waits and backoff) without real sleeping. */
export interface UploadDeps {
  retry?: Partial<Pick<RetryOptions, 'minDelayMs' | 'maxDelayMs' | 'sleep' | 'attempts' | 'maxRetryTimeMs'>>;
}

/** Foreground retries: a few attempts within two minutes, then the outbox takes over. */
const NOW_ATTEMPTS = 4;
const NOW_MAX_RETRY_MS = 120_000;

interface Source {
  path: string;
  kind: 'file' | 'dir';
  size: number;
  mtime: Date;
}

function usage(message: string): AgentError {
  return new AgentError(message, ExitCode.usage);
}

export function parseType(value: string | undefined): ArtifactType {
  if (value === undefined) throw usage(`--type is required: one of ${ARTIFACT_TYPES.join(', ')}`);
  if (!(ARTIFACT_TYPES as readonly string[]).includes(value)) throw usage(`unknown artifact type "${value}": use one of ${ARTIFACT_TYPES.join(', ')}`);
  return value as ArtifactType;
}

function unreadable(path: string, err: unknown): AgentError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' || code === 'EPERM' ? 'permission denied (run as root or as the file owner)' : errorMessage(err);
  return new AgentError(`cannot read ${path}: ${why}`, ExitCode.noInput);
}

/** What the user named: exists, is a readable file (≤ 64 MiB) or directory, and is not the outbox's own. */
async function checkSource(path: string, layout: StateLayout): Promise<Source> {
  const abs = resolve(path);
  let info;
  try {
    info = await stat(abs);
    if (info.isFile()) await (await open(abs, 'r')).close();
    else if (info.isDirectory()) await readdir(abs);
  } catch (err) {
    throw unreadable(path, err);
  }
  if (!info.isFile() && !info.isDirectory()) throw new AgentError(`${path} is not a regular file or directory`, ExitCode.dataError);
  if (info.isFile() && info.size > MAX_ARTIFACT_BYTES) {
    throw new AgentError(`${path} is ${formatBytes(info.size)} (${info.size} bytes); artifacts are limited to ${formatBytes(MAX_ARTIFACT_BYTES)}`, ExitCode.dataError);
  }
  const real = await realpath(abs);
  const outbox = await realpath(layout.outboxDir).catch(() => resolve(layout.outboxDir));
  if (real === outbox || real.startsWith(outbox + sep)) throw usage(`${path} is already in the agent's outbox (${outbox}); the agent uploads it by itself`);
  if (info.isDirectory() && outbox.startsWith(real + sep)) throw usage(`${path} contains the agent's outbox (${outbox}); upload a directory outside the state directory`);
  return { path: abs, kind: info.isDirectory() ? 'dir' : 'file', size: info.size, mtime: info.mtime };
}

async function requireStateDir(config: Config): Promise<StateLayout> {
  const info = await stat(config.stateDir).catch(() => undefined);
  if (info?.isDirectory() !== true) {
    throw new AgentError(
      `the agent's state directory ${config.stateDir} does not exist: is the agent installed and has it started once? (pass --state-dir or set BYTEOR_STATE_DIR if it lives elsewhere)`,
      ExitCode.unavailable,
    );
  }
  return new StateLayout(config.stateDir);
}

/** `byteor-agent upload --type T PATH [--now] [--move]`. */
export async function runUpload(path: string, options: UploadOptions, ctx: CommandContext, deps: UploadDeps = {}): Promise<number> {
  const type = parseType(options.type);
  const config = await loadCommandConfig(options, ctx);
  const layout = new StateLayout(config.stateDir);
  const source = await checkSource(path, layout);
  if (options.now === true) return uploadNow(source, type, options, config, ctx, deps);
  const placed = await queue(source, type, options, config);
  ctx.stdout(`queued ${path} as ${placed} (${type}, ${source.kind === 'dir' ? 'a directory, packed at upload' : formatBytes(source.size)}); the running agent uploads it shortly (see byteor-agent status)`);
  return ExitCode.ok;
}

async function queue(source: Source, type: ArtifactType, options: UploadOptions, config: Config): Promise<string> {
  const layout = await requireStateDir(config);
  try {
    return (await placeInOutbox(layout, type, source.path, { move: options.move === true })).path;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC') throw new AgentError(`no space left to queue ${source.path} in ${layout.outboxDir}`, ExitCode.tempFail);
    if (code === 'EACCES' || code === 'EPERM') throw new AgentError(`cannot write to ${layout.outboxDir}: permission denied (run as root or as the byteor-agent user)`, ExitCode.noPermission);
    throw err;
  }
}

/** Packs (directories) into a private temp directory and hashes; the caller removes `cleanup`. */
async function prepareNow(source: Source, signal: AbortSignal): Promise<{ prepared: Prepared; cleanup: string | undefined }> {
  const capturedAt = source.mtime.toISOString();
  const name = entryNameFor(source.path);
  if (source.kind === 'file') {
    const hashed = await sha256File(source.path, signal).catch((err: unknown) => {
      throw err instanceof AbortedError ? err : unreadable(source.path, err);
    });
    if (hashed.size > MAX_ARTIFACT_BYTES) throw new AgentError(`${source.path} grew to ${formatBytes(hashed.size)}; artifacts are limited to ${formatBytes(MAX_ARTIFACT_BYTES)}`, ExitCode.dataError);
    return { prepared: { path: source.path, packed: false, sha256: hashed.sha256, size: hashed.size, filename: name, contentType: contentTypeFor(name, false), capturedAt }, cleanup: undefined };
  }
  const dir = await mkdtemp(join(tmpdir(), 'byteor-upload-'));
  try {
    const filename = `${name}.tar.gz`;
    const archive = join(dir, filename);
    const packed = await packDirectory(source.path, archive, { maxBytes: MAX_ARTIFACT_BYTES, signal });
    return { prepared: { path: archive, packed: true, sha256: packed.sha256, size: packed.size, filename, contentType: contentTypeFor(filename, true), capturedAt }, cleanup: dir };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    if (err instanceof PackError) {
      const what = err.code === 'too_large' ? `packs to more than the ${formatBytes(MAX_ARTIFACT_BYTES)} artifact limit` : `cannot be packed: ${err.message}`;
      throw new AgentError(`${source.path} ${what}`, ExitCode.dataError);
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw new AgentError(`no space left in ${tmpdir()} to pack ${source.path} (set TMPDIR elsewhere)`, ExitCode.tempFail);
    if (err instanceof AbortedError) throw err;
    throw unreadable(source.path, err);
  }
}

async function uploadNow(source: Source, type: ArtifactType, options: UploadOptions, config: Config, ctx: CommandContext, deps: UploadDeps): Promise<number> {
  const identity = requireIdentity(config);
  registerSecret(identity.apiKey);
  const client = new AgentClient({
    baseUrl: identity.apiBaseUrl,
    agentId: identity.agentId,
    apiKey: identity.apiKey,
    allowInsecureHttp: config.allowInsecureHttp,
    ...(ctx.fetch ? { fetch: ctx.fetch } : {}),
  });
  const { prepared, cleanup } = await prepareNow(source, ctx.signal);
  const attempts = deps.retry?.attempts ?? NOW_ATTEMPTS;
  let response: ArtifactResponse & { status: number };
  try {
    response = await withRetries(
      async () => {
        const bar = progressBar(ctx.progress, `uploading ${prepared.filename}`);
        try {
          return await sendArtifact(client, type, prepared, { signal: ctx.signal, onProgress: (sent, total) => bar.update(sent, total) });
        } finally {
          bar.finish();
        }
      },
      {
        attempts,
        maxRetryTimeMs: NOW_MAX_RETRY_MS,
        signal: ctx.signal,
        onRetry: ({ attempt, error, waitMs }) => {
          // A Retry-After wait does not use up an attempt; otherwise p-retry reports the last failure
          // too, and what follows that is nowFailed(), not a retry.
          if (waitMs !== undefined) ctx.stderr(`upload failed (${error.message}); retrying in ${Math.ceil(waitMs / 1000)} s as the control plane asked`);
          else if (attempt < attempts) ctx.stderr(`upload failed (${error.message}); retrying`);
        },
        ...deps.retry,
      },
    );
  } catch (err) {
    return await nowFailed(err, source, type, options, config, ctx);
  } finally {
    if (cleanup !== undefined) await rm(cleanup, { recursive: true, force: true });
  }
  const what = `${source.path} (${type}, ${formatBytes(prepared.size)}, sha256 ${prepared.sha256})`;
  ctx.stdout(response.deduplicated ? `already uploaded: ${what} is ${response.artifact_id} (deduplicated)` : `uploaded ${what} as ${response.artifact_id}`);
  return ExitCode.ok;
}

/** A refusal is final; a failure that time may fix hands the artifact to the outbox. */
async function nowFailed(err: unknown, source: Source, type: ArtifactType, options: UploadOptions, config: Config, ctx: CommandContext): Promise<number> {
  if (err instanceof PermanentError && (err.status === 400 || err.status === 413 || err.status === 422)) {
    throw new AgentError(`the control plane refused ${source.path}: ${err.message}`, ExitCode.dataError);
  }
  if (!(err instanceof ApiError) || !err.retryable) throw err;
  let placed: string;
  try {
    placed = await queue(source, type, options, config);
  } catch (queueErr) {
    throw new AgentError(`could not upload ${source.path} now (${err.message}), nor queue it: ${errorMessage(queueErr)}`, ExitCode.tempFail);
  }
  ctx.stderr(`could not upload ${source.path} now (${err.message}); queued it as ${placed}: the running agent keeps retrying`);
  return ExitCode.tempFail;
}
