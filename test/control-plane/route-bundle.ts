import { authenticateAgent } from './auth.js';
import type { RouteContext } from './context.js';
import { safeEqual } from './crypto.js';
import { storagePath, storageSignature } from './deployments.js';
import { errorResponse, storageErrorResponse } from './responses.js';
import type { FaultOptions, PublishedDeployment } from './types.js';

/** Bodies stream in chunks like a real server's, so a mid-body drop lands between chunks. */
const CHUNK_BYTES = 64 * 1024;

/**
 * The bytes [start, end) as a stream that fails after `truncateAfter` bytes when set: the
 * in-process equivalent of a connection dropped mid-body (the HTTP server turns the stream
 * error into a destroyed socket).
 */
function bodyStream(bytes: Buffer, start: number, end: number, truncateAfter: number | undefined): ReadableStream<Uint8Array> {
  let position = start;
  let sent = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (truncateAfter !== undefined && sent >= truncateAfter) {
          controller.error(new Error(`connection dropped after ${sent} body bytes (injected fault)`));
          return;
        }
        if (position >= end) {
          controller.close();
          return;
        }
        let n = Math.min(CHUNK_BYTES, end - position);
        if (truncateAfter !== undefined) n = Math.min(n, truncateAfter - sent);
        controller.enqueue(Uint8Array.prototype.slice.call(bytes, position, position + n));
        position += n;
        sent += n;
      },
    },
    { highWaterMark: 0 },
  );
}

type RangeDecision = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/** One `bytes=` range (RFC 9110 §14.1.2); anything unparseable or multi-range is ignored (200). */
export function decideRange(header: string | null, size: number): RangeDecision {
  if (header === null) return { kind: 'full' };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null || (match[1] === '' && match[2] === '')) return { kind: 'full' };
  const [, first = '', last = ''] = match;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(first);
  if (start >= size) return { kind: 'unsatisfiable' };
  if (last === '') return { kind: 'partial', start, end: size };
  const lastByte = Number(last);
  if (lastByte < start) return { kind: 'full' };
  return { kind: 'partial', start, end: Math.min(lastByte + 1, size) };
}

/** Serves bundle bytes with Range support (API.md §4), honouring the bundle faults. */
export function serveBundle(request: Request, published: PublishedDeployment, fault: FaultOptions | undefined): Response {
  const bytes = published.bundle;
  const size = bytes.length;
  const common = { 'content-type': 'application/gzip', 'accept-ranges': 'bytes', etag: `"${published.bundleSha256}"` };
  const range = fault?.ignoreRange === true ? { kind: 'full' as const } : decideRange(request.headers.get('range'), size);
  if (range.kind === 'unsatisfiable') {
    return new Response(null, { status: 416, headers: { ...common, 'content-range': `bytes */${size}` } });
  }
  const start = range.kind === 'partial' ? range.start : 0;
  const end = range.kind === 'partial' ? range.end : size;
  const headers: Record<string, string> = { ...common, 'content-length': String(end - start) };
  if (range.kind === 'partial') headers['content-range'] = `bytes ${start}-${end - 1}/${size}`;
  return new Response(bodyStream(bytes, start, end, fault?.truncateAfterBytes), { status: range.kind === 'partial' ? 206 : 200, headers });
}

/** GET /api/v1/{agents/{agent_id} | environments/{env_id}}/deployments/{deployment_id}/bundle. */
export function bundle(ctx: RouteContext): Response {
  const { agentId, environmentId, deploymentId = '' } = ctx.params;
  const auth = authenticateAgent(ctx, { agentId, environmentId, scope: 'agent:deployment_read' });
  if (!auth.ok) return auth.response;
  const published = ctx.state.deployments.get(deploymentId);
  // Served for any deployment that ever targeted this agent (or its environment): an agent may
  // still be downloading a deployment that a newer one has since replaced.
  const visible =
    published !== undefined &&
    ('agentId' in published.target ? agentId !== undefined && published.target.agentId === agentId : environmentId !== undefined && published.environmentId === environmentId);
  if (!visible) return errorResponse(404, 'unknown_deployment', `no bundle for deployment ${deploymentId} here`);
  return serveBundle(ctx.request, published, ctx.fault);
}

/**
 * GET {storage origin}/_storage/bundles/{deployment_id}/bundle.tar.gz?X-Sig=…: a pre-signed URL.
 * No auth; like real pre-signed storage it refuses a request that also carries Authorization.
 */
export function storageBundle(ctx: RouteContext): Response {
  const deploymentId = ctx.params.deploymentId ?? '';
  if (ctx.request.headers.has('authorization')) {
    return storageErrorResponse(400, 'InvalidArgument', 'Only one auth mechanism allowed; only the X-Sig query parameter or the Authorization header should be specified');
  }
  const expected = storageSignature(ctx.state.storageSecret, storagePath(deploymentId));
  if (!safeEqual(ctx.url.searchParams.get('X-Sig') ?? '', expected)) {
    return storageErrorResponse(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided');
  }
  const published = ctx.state.deployments.get(deploymentId);
  if (published === undefined) return storageErrorResponse(404, 'NoSuchKey', 'The specified key does not exist.');
  return serveBundle(ctx.request, published, ctx.fault);
}
