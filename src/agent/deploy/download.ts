import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AgentClient } from '../../api/client.js';
import { ApiError, ForbiddenError, TransientError, UnauthorizedError, type RequestFacts } from '../../api/errors.js';
import { isDiskFull } from '../../archive/errors.js';
import { AbortedError } from '../../errors.js';
import { freeBytes as statfsFreeBytes, requiredFreeBytes } from './disk.js';
import { DeployFailure } from './failure.js';

export interface DownloadRequest {
  client: AgentClient;
  url: string;
  sha256: string;
  size: number;
  /** The partial file (kept across attempts and restarts, resumed with Range). */
  path: string;
  signal: AbortSignal;
  /** Free bytes on the filesystem of a directory (statfs by default; tests inject). */
  freeBytes?: (dir: string) => Promise<number>;
  /** Opens the partial file for writing ('w' from scratch, 'a' to append); tests inject ENOSPC here. */
  openWrite?: (path: string, flags: 'w' | 'a') => Promise<DownloadSink>;
}

export interface DownloadResult {
  /** Bytes already on disk when this call started (0 for a fresh download). */
  resumedFrom: number;
  /** Bytes received over the network by this call. */
  fetched: number;
}

const WRITE_CHUNK = 1024 * 1024;

const defaultOpenWrite = (path: string, flags: 'w' | 'a'): Promise<DownloadSink> => open(path, flags, 0o600);

async function sizeOf(path: string): Promise<number> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

async function hashFile(path: string, hash: Hash, signal: AbortSignal): Promise<void> {
  for await (const chunk of createReadStream(path, { highWaterMark: WRITE_CHUNK, signal })) hash.update(chunk as Buffer);
}

/** `bytes <first>-<last>/<total|*>` → first and total (undefined when unknown or unparseable). */
export function parseContentRange(header: string | null): { first: number; total: number | undefined } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header?.trim() ?? '');
  if (match === null) return undefined;
  return { first: Number(match[1]), total: match[3] === '*' ? undefined : Number(match[3]) };
}

/**
 * Storage behind a pre-signed URL answering 401/403 says nothing about the agent's own key or
 * scopes (the URL may just have expired): a retry refetches the deployment and its URL.
 */
function crossOriginRefusal(err: unknown): unknown {
  if (!(err instanceof UnauthorizedError || err instanceof ForbiddenError)) return err;
  const facts: RequestFacts = { method: err.method, path: err.path, status: err.status, requestId: err.requestId, code: err.code };
  return new TransientError(facts, 'server', 'storage refused the bundle URL', { cause: err });
}

class Restart extends Error {}

/**
 * Downloads a bundle into `path` while hashing it (API.md §4), resuming a partial file with Range.
 * Handles a server that answers 200 to a range (starts over), 416 (the partial does not fit: starts
 * over), a Content-Range that starts elsewhere (starts over). Checks the free space first (about
 * 3× the size), then `size_bytes` as bytes arrive and `sha256` at the end.
 *
 * Throws DeployFailure (disk_full, size_mismatch, digest_mismatch: the partial file is removed),
 * a retryable ApiError for network trouble (the partial file is kept for the next attempt), or
 * AbortedError on shutdown.
 */
export async function downloadBundle(req: DownloadRequest): Promise<DownloadResult> {
  const freeBytes = req.freeBytes ?? statfsFreeBytes;
  let have = await sizeOf(req.path);
  if (have > req.size) {
    await rm(req.path, { force: true });
    have = 0;
  }
  const resumedFrom = have;
  const need = requiredFreeBytes(req.size, have);
  const free = await freeBytes(dirname(req.path));
  if (free < need) throw new DeployFailure('disk_full', `the bundle needs about ${need} free bytes (3× its ${req.size} bytes), only ${free} are available`);

  // A resumed file that turns out wrong may be the partial's fault, not the server's: one fresh try.
  let startedOver = false;
  for (;;) {
    try {
      const fetched = await attempt(req, have);
      return { resumedFrom, fetched };
    } catch (err) {
      if (err instanceof Restart && !startedOver) {
        startedOver = true;
        await rm(req.path, { force: true });
        have = 0;
        continue;
      }
      if (err instanceof DeployFailure) await rm(req.path, { force: true });
      throw err instanceof Restart ? new DeployFailure('digest_mismatch', err.message) : err;
    }
  }
}

async function attempt(req: DownloadRequest, offset: number): Promise<number> {
  const hash = createHash('sha256');
  if (offset > 0) await hashFile(req.path, hash, req.signal);
  if (offset === req.size) return finish(req, hash, offset, 0);

  let sent;
  try {
    sent = await req.client.openBundle(req.url, { offset, signal: req.signal });
  } catch (err) {
    const url = req.client.transport.resolve(req.url);
    throw url === undefined || req.client.transport.isSameOrigin(url) ? err : crossOriginRefusal(err);
  }
  const { response, facts } = sent;
  let start = offset;
  try {
    if (response.status === 416) {
      if (offset === 0) throw new DeployFailure('size_mismatch', `the server has no bytes for a ${req.size}-byte bundle (416)`);
      throw new Restart(`the server refused resuming at byte ${offset} (416)`);
    }
    if (response.status === 206) {
      const range = parseContentRange(response.headers.get('content-range'));
      if (range === undefined || range.first !== offset) throw new Restart(`the server answered another range (${response.headers.get('content-range') ?? 'none'}) than bytes=${offset}-`);
      if (range.total !== undefined && range.total !== req.size) throw new DeployFailure('size_mismatch', `the server has ${range.total} bytes, the deployment says ${req.size}`);
    } else if (response.status === 200) {
      // Either a fresh download, or the server ignored the Range header: the body starts at byte 0.
      start = 0;
      const length = response.headers.get('content-length');
      if (length !== null && /^\d+$/.test(length) && Number(length) !== req.size) throw new DeployFailure('size_mismatch', `the server sends ${length} bytes, the deployment says ${req.size}`);
    } else {
      throw new TransientError(facts, 'protocol', `unexpected status ${response.status} for a bundle download`);
    }
    if (response.body === null) throw new TransientError(facts, 'protocol', 'the bundle response has no body');
    const bodyHash = start === offset ? hash : createHash('sha256');
    const received = await stream(req, response.body, bodyHash, start, facts);
    return finish(req, bodyHash, start + received, received);
  } finally {
    sent.finish();
    // Whatever was not read (a refused answer, a failure) is released, never awaited: a body that
    // never settles must not hold the job.
    if (response.body !== null && !response.bodyUsed) void response.body.cancel().catch(() => undefined);
  }
}

/** Where downloaded bytes go: a FileHandle by default (tests inject one that fails with ENOSPC). */
export interface DownloadSink {
  writev(chunks: Buffer[]): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Streams the body into the partial file, hashing as it goes. Bytes are written in ~1 MiB batches,
 * one batch in flight while the next is gathered. When the connection drops, everything received
 * so far is still written out, so the next attempt resumes right there.
 */
async function stream(req: DownloadRequest, body: ReadableStream<Uint8Array>, hash: Hash, start: number, facts: RequestFacts): Promise<number> {
  const sink = await (req.openWrite ?? defaultOpenWrite)(req.path, start === 0 ? 'w' : 'a');
  let received = 0;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  // The write in flight never rejects (its error is kept): a rejection nobody awaits yet, while
  // the next chunk is awaited, would be an unhandled rejection.
  let writing: Promise<void> = Promise.resolve();
  let writeError: unknown;
  let sourceError: unknown;
  let failure: DeployFailure | undefined;
  const flush = async (): Promise<void> => {
    await writing;
    if (writeError !== undefined || batch.length === 0) return;
    const chunks = batch;
    batch = [];
    batchBytes = 0;
    writing = sink.writev(chunks).then(
      () => undefined,
      (err: unknown) => {
        writeError = err;
      },
    );
  };
  try {
    // A reader rather than for-await: leaving a for-await early awaits the stream's cancel(),
    // which a stalled connection (and msw) may never settle. Here cancel is fire-and-forget.
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value: chunk } = await reader.read();
        if (done) break;
        received += chunk.byteLength;
        if (start + received > req.size) {
          failure = new DeployFailure('size_mismatch', `the server sends more than the ${req.size} bytes the deployment names`);
          break;
        }
        const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        hash.update(buffer);
        batch.push(buffer);
        batchBytes += buffer.length;
        if (batchBytes >= WRITE_CHUNK) await flush();
        if (writeError !== undefined) break;
      }
    } catch (err) {
      sourceError = err;
    }
    if (failure !== undefined || writeError !== undefined) void reader.cancel().catch(() => undefined);
    // Even after a drop, what arrived is written: the next attempt resumes after it.
    if (failure === undefined) await flush();
    await writing;
  } finally {
    await sink.close().catch(() => undefined);
  }
  if (failure !== undefined) throw failure;
  if (writeError !== undefined) {
    if (isDiskFull(writeError)) throw new DeployFailure('disk_full', `the disk filled up while downloading the bundle (${(writeError as NodeJS.ErrnoException).code})`, {}, { cause: writeError });
    throw writeError;
  }
  if (sourceError !== undefined) {
    if (req.signal.aborted) throw new AbortedError();
    // The connection dropped mid-body: the partial file stays and the next attempt resumes it.
    if (sourceError instanceof ApiError) throw sourceError;
    throw new TransientError({ ...facts }, 'network', `the download broke off after ${start + received} of ${req.size} bytes`, { cause: sourceError });
  }
  return received;
}

async function finish(req: DownloadRequest, hash: Hash, total: number, received: number): Promise<number> {
  if (total !== req.size) throw new DeployFailure('size_mismatch', `the bundle has ${total} bytes, the deployment says ${req.size}`);
  const digest = hash.digest('hex');
  if (digest !== req.sha256) {
    const message = `the bundle hashes to ${digest}, the deployment says ${req.sha256}`;
    // Bytes that came from an earlier attempt may be the culprit: start over once before failing.
    if (received < total) throw new Restart(message);
    throw new DeployFailure('digest_mismatch', message);
  }
  return received;
}
