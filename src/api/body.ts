/** API.md caps API bodies at 4 MiB; a larger "JSON" reply is not something we parse. */
export const MAX_JSON_BYTES = 4 * 1024 * 1024;

export class BodyTooLargeError extends Error {
  constructor(limit: number) {
    super(`response body larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Releases a body we do not read. Not awaited: cancellation settles when the stream is torn down,
 * which some implementations (msw's interceptor) never report, and nothing depends on it.
 */
export function discardBody(body: ReadableStream<Uint8Array> | null | undefined): void {
  if (body === null || body === undefined) return;
  body.cancel().catch(() => undefined);
}

/** Reads a body up to `limit` bytes without buffering more than that. */
export async function readBodyLimited(response: Response, limit: number): Promise<Uint8Array> {
  if (response.body === null) return new Uint8Array(0);
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    discardBody(response.body);
    throw new BodyTooLargeError(limit);
  }
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      void reader.cancel().catch(() => undefined);
      throw new BodyTooLargeError(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** Control characters out, length bounded: safe to put a proxy's HTML error page in a log line. */
export function excerpt(text: string, max = 200): string {
  const flat = text.replace(/[\0-\x1f\x7f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

export interface ErrorBody {
  code?: string | undefined;
  message?: string | undefined;
  scope?: string | undefined;
}

/** Parses `{"error":{"code","message"}}` (API.md), tolerating anything else a proxy may send. */
export function parseErrorBody(bytes: Uint8Array, contentType: string | null): ErrorBody {
  const text = Buffer.from(bytes).toString('utf8');
  if (text.trim() === '') return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    const error = (parsed as { error?: unknown } | null)?.error;
    if (error !== null && typeof error === 'object') {
      const { code, message, required_scope: requiredScope, scope } = error as Record<string, unknown>;
      const named = typeof requiredScope === 'string' ? requiredScope : typeof scope === 'string' ? scope : undefined;
      const msg = typeof message === 'string' ? excerpt(message, 500) : undefined;
      return {
        code: typeof code === 'string' ? excerpt(code, 64) : undefined,
        message: msg,
        scope: named ?? /\bagent:[a-z_]+\b/.exec(msg ?? '')?.[0],
      };
    }
  } catch {
    // not JSON: fall through to an excerpt
  }
  const kind = contentType?.includes('html') === true ? 'non-JSON (HTML) body: ' : 'non-JSON body: ';
  return { message: kind + excerpt(text) };
}
