/**
 * Response builders. Every API error has the API.md shape {"error":{"code","message"}}; the
 * common headers (X-Request-Id, Date) are added in one place by the dispatcher.
 */

/** API.md caps API request bodies at 4 MiB. */
export const MAX_JSON_REQUEST_BYTES = 4 * 1024 * 1024;

export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const text = JSON.stringify(body);
  return new Response(text, { status, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers } });
}

export function errorResponse(status: number, code: string, message: string, options: { headers?: Record<string, string>; extra?: Record<string, unknown> } = {}): Response {
  return jsonResponse(status, { error: { code, message, ...options.extra } }, options.headers);
}

export function emptyResponse(status: 204 | 304, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers });
}

/** Pre-signed storage answers like S3 does: XML, not the API's JSON (clients must cope). */
export function storageErrorResponse(status: number, code: string, message: string): Response {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>\n`;
  return new Response(xml, { status, headers: { 'content-type': 'application/xml' } });
}

/** A fault's canned answer: a string body verbatim (HTML when it looks like it), else JSON. */
export function faultResponse(status: number, body: unknown, headers: Record<string, string>): Response {
  if (typeof body === 'string') {
    const type = /^\s*</.test(body) ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8';
    return new Response(status === 204 || status === 304 ? null : body, { status, headers: { 'content-type': type, ...headers } });
  }
  if (status === 204 || status === 304) return new Response(null, { status, headers });
  const json = body ?? { error: { code: 'injected_fault', message: `fault injected by the test control plane (status ${status})` } };
  return jsonResponse(status, json, headers);
}

export type BodyRead = { kind: 'none' } | { kind: 'ok'; bytes: Buffer } | { kind: 'too_large'; read: number };

/** Reads a request body, stopping (and cancelling) once it exceeds `limit`. */
export async function readRequestBody(request: Request, limit: number): Promise<BodyRead> {
  if (request.body === null) return { kind: 'none' };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      discardBody(reader);
      return { kind: 'too_large', read: total };
    }
    chunks.push(value);
  }
  return { kind: 'ok', bytes: Buffer.concat(chunks) };
}

/**
 * Discards the rest of a request body without waiting: msw hands handlers a tee'd clone, and
 * cancelling one branch of a tee only settles once the other branch is cancelled too, so an
 * awaited cancel() would hang the request.
 */
export function discardBody(stream: ReadableStream<Uint8Array> | ReadableStreamDefaultReader<Uint8Array> | null | undefined, reason?: unknown): void {
  stream?.cancel(reason).catch(() => undefined);
}
