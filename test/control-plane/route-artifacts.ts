import { createHash } from 'node:crypto';
import { MAX_ARTIFACT_BYTES } from '../../src/api/types.js';
import { authenticateAgent } from './auth.js';
import type { RouteContext } from './context.js';
import { newId } from './ids.js';
import { MultipartError, multipartBoundary, parseMultipart, type MultipartPart } from './multipart.js';
import { discardBody, errorResponse, jsonResponse } from './responses.js';
import type { State } from './state.js';
import { artifactMetadataProblem } from './validate.js';

/** Room for the metadata part and the multipart framing on top of a 64 MiB file. */
export const MULTIPART_OVERHEAD_BYTES = 256 * 1024;
const MAX_METADATA_BYTES = 64 * 1024;

interface Budget {
  allowed: boolean;
  headers: Record<string, string>;
}

/** Fixed-window budget per runtime key (API.md "Rate limits"). Every authenticated upload counts. */
function spendBudget(state: State, key: string, now: number): Budget {
  const budget = state.artifactBudget;
  if (budget === undefined) return { allowed: true, headers: {} };
  let window = state.budgetWindows.get(key);
  if (window === undefined || now >= window.start + budget.windowMs) {
    window = { start: now, count: 0 };
    state.budgetWindows.set(key, window);
  }
  const resetAt = window.start + budget.windowMs;
  const allowed = window.count < budget.limit;
  if (allowed) window.count += 1;
  const headers: Record<string, string> = {
    'x-ratelimit-limit': String(budget.limit),
    'x-ratelimit-remaining': String(budget.limit - window.count),
    'x-ratelimit-reset': String(Math.ceil(resetAt / 1000)),
  };
  if (!allowed) headers['retry-after'] = String(Math.max(1, Math.ceil((resetAt - now) / 1000)));
  return { allowed, headers };
}

interface Upload {
  metadataText: string | undefined;
  file: { part: MultipartPart; size: number; sha256: string } | undefined;
}

/**
 * Streams the multipart body: `metadata` (JSON, small) must come first, then `file`, which is
 * hashed and counted as it passes. Only the hash and size are kept.
 */
async function readUpload(body: ReadableStream<Uint8Array>, boundary: string): Promise<{ upload: Upload; bytes: number }> {
  const upload: Upload = { metadataText: undefined, file: undefined };
  let current: 'metadata' | 'file' | undefined;
  let metadataChunks: Buffer[] = [];
  let metadataBytes = 0;
  let hash = createHash('sha256');
  let fileSize = 0;
  let filePart: MultipartPart | undefined;
  const bytes = await parseMultipart(
    body,
    boundary,
    {
      onPart(part) {
        if (part.name === 'metadata' && upload.metadataText === undefined && current === undefined) {
          current = 'metadata';
          metadataChunks = [];
          metadataBytes = 0;
        } else if (part.name === 'file' && upload.metadataText !== undefined && upload.file === undefined) {
          current = 'file';
          filePart = part;
          hash = createHash('sha256');
          fileSize = 0;
        } else {
          throw new MultipartError('invalid_multipart', `unexpected part ${JSON.stringify(part.name)}: expected "metadata" then "file"`);
        }
      },
      onData(chunk) {
        if (current === 'metadata') {
          metadataBytes += chunk.byteLength;
          if (metadataBytes > MAX_METADATA_BYTES) throw new MultipartError('invalid_multipart', `the metadata part is larger than ${MAX_METADATA_BYTES} bytes`);
          metadataChunks.push(Buffer.from(chunk));
        } else {
          fileSize += chunk.byteLength;
          if (fileSize > MAX_ARTIFACT_BYTES) throw new MultipartError('payload_too_large', `the file is larger than ${MAX_ARTIFACT_BYTES} bytes (64 MiB)`);
          hash.update(chunk);
        }
      },
      onPartEnd() {
        if (current === 'metadata') upload.metadataText = Buffer.concat(metadataChunks).toString('utf8');
        else if (filePart !== undefined) upload.file = { part: filePart, size: fileSize, sha256: hash.digest('hex') };
        current = undefined;
      },
    },
    { maxBytes: MAX_ARTIFACT_BYTES + MULTIPART_OVERHEAD_BYTES },
  );
  return { upload, bytes };
}

/** POST /api/v1/agents/{agent_id}/artifacts (API.md §6). */
export async function artifacts(ctx: RouteContext): Promise<Response> {
  const { state, request } = ctx;
  const auth = authenticateAgent(ctx, { agentId: ctx.params.agentId, scope: 'agent:artifact_upload' });
  if (!auth.ok) return auth.response;
  const budget = spendBudget(state, auth.agent.apiKey, ctx.now);
  const fail = (status: number, code: string, message: string): Response => errorResponse(status, code, message, { headers: budget.headers });
  if (!budget.allowed) {
    discardBody(request.body);
    return fail(429, 'rate_limited', `artifact upload budget spent; retry after ${budget.headers['retry-after']} s`);
  }

  const boundary = multipartBoundary(request.headers.get('content-type'));
  if (boundary === undefined || request.body === null) {
    discardBody(request.body);
    return fail(415, 'unsupported_media_type', 'the body must be multipart/form-data with a boundary');
  }
  // A declared length over the cap is refused before reading a byte, as a real gateway does.
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_ARTIFACT_BYTES + MULTIPART_OVERHEAD_BYTES) {
    discardBody(request.body);
    return fail(413, 'payload_too_large', `the upload is larger than 64 MiB (Content-Length ${declared})`);
  }

  let upload: Upload;
  try {
    const read = await readUpload(request.body, boundary);
    upload = read.upload;
    ctx.record.bodyBytes = read.bytes;
  } catch (err) {
    if (!(err instanceof MultipartError)) throw err;
    if (err.code === 'payload_too_large') return fail(413, 'payload_too_large', err.message);
    return fail(400, 'invalid_multipart', err.message);
  }
  if (upload.metadataText === undefined || upload.file === undefined) return fail(400, 'invalid_multipart', 'expected a "metadata" part and then a "file" part');

  let metadata: unknown;
  try {
    metadata = JSON.parse(upload.metadataText);
  } catch {
    return fail(400, 'invalid_metadata', 'the metadata part is not valid JSON');
  }
  ctx.record.json = metadata;
  const problem = artifactMetadataProblem(metadata);
  if (problem !== undefined) return fail(400, problem.code, problem.message);
  const meta = metadata as { type: string; sha256: string; size_bytes: number; captured_at: string; filename: string; labels?: Record<string, string> };
  // The hash check comes first: wrong bytes are a hash_mismatch whatever their length.
  if (upload.file.sha256 !== meta.sha256) return fail(400, 'hash_mismatch', `the file hashes to ${upload.file.sha256}, not ${meta.sha256}`);
  if (upload.file.size !== meta.size_bytes) return fail(400, 'size_mismatch', `the file has ${upload.file.size} bytes, not ${meta.size_bytes}`);

  const existing = state.artifacts.find((artifact) => artifact.environmentId === auth.agent.environmentId && artifact.sha256 === meta.sha256);
  if (existing !== undefined) {
    existing.dedupCount += 1;
    return jsonResponse(200, { artifact_id: existing.artifactId, sha256: existing.sha256, deduplicated: true }, budget.headers);
  }
  const artifactId = newId('art');
  state.artifacts.push({
    artifactId,
    agentId: auth.agent.agentId,
    environmentId: auth.agent.environmentId,
    type: meta.type,
    sha256: meta.sha256,
    sizeBytes: upload.file.size,
    filename: meta.filename,
    contentType: upload.file.part.contentType,
    labels: { ...meta.labels },
    capturedAt: meta.captured_at,
    dedupCount: 0,
    receivedAt: ctx.now,
  });
  return jsonResponse(201, { artifact_id: artifactId, sha256: meta.sha256, deduplicated: false }, budget.headers);
}
