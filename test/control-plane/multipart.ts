/**
 * A streaming multipart/form-data parser (RFC 7578). Streaming because artifact uploads reach
 * 64 MiB and the fake must keep only their hash and size; Request.formData() would buffer all of it.
 */

export interface MultipartPart {
  name: string;
  filename: string | undefined;
  contentType: string | undefined;
}

/** Receives the parts in order. Chunks are views into a reused buffer: consume them at once. */
export interface MultipartSink {
  onPart(part: MultipartPart): void;
  onData(chunk: Uint8Array): void;
  onPartEnd(): void;
}

export class MultipartError extends Error {
  readonly code: 'invalid_multipart' | 'payload_too_large';
  constructor(code: 'invalid_multipart' | 'payload_too_large', message: string) {
    super(message);
    this.name = 'MultipartError';
    this.code = code;
  }
}

/** The boundary parameter of a multipart/form-data Content-Type, or undefined. */
export function multipartBoundary(contentType: string | null): string | undefined {
  if (contentType === null || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined;
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

function parsePartHeaders(text: string): MultipartPart {
  const headers = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new MultipartError('invalid_multipart', `malformed part header line: ${JSON.stringify(line.slice(0, 80))}`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const disposition = headers.get('content-disposition');
  if (disposition === undefined || !/^form-data\s*(;|$)/i.test(disposition)) {
    throw new MultipartError('invalid_multipart', 'a part lacks Content-Disposition: form-data');
  }
  const param = (key: string): string | undefined => {
    const match = new RegExp(`;\\s*${key}="((?:[^"\\\\]|\\\\.)*)"`, 'i').exec(disposition) ?? new RegExp(`;\\s*${key}=([^\\s;]+)`, 'i').exec(disposition);
    return match?.[1];
  };
  const name = param('name');
  if (name === undefined) throw new MultipartError('invalid_multipart', 'a part has no name');
  return { name, filename: param('filename'), contentType: headers.get('content-type') };
}

export interface MultipartLimits {
  /** Total bytes of the body; more throws payload_too_large. */
  maxBytes: number;
  maxHeaderBytes?: number;
  maxParts?: number;
}

/**
 * Parses `body` into `sink`. Rejects with MultipartError on malformed input or too many bytes,
 * or with whatever the sink throws; in both cases the body stream is cancelled.
 * Returns the number of body bytes read.
 */
export async function parseMultipart(body: ReadableStream<Uint8Array>, boundary: string, sink: MultipartSink, limits: MultipartLimits): Promise<number> {
  const maxHeaderBytes = limits.maxHeaderBytes ?? 16 * 1024;
  const maxParts = limits.maxParts ?? 16;
  // Starting the buffer with CRLF lets the first boundary match the same pattern as the others.
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  let buf: Buffer = Buffer.from('\r\n');
  type ParserState = 'preamble' | 'after-boundary' | 'headers' | 'body' | 'epilogue';
  // Cast, not annotation: step() changes it inside a closure, which TS narrowing cannot see.
  let state = 'preamble' as ParserState;
  let parts = 0;
  let total = 0;

  const step = (): void => {
    for (;;) {
      switch (state) {
        case 'preamble': {
          const at = buf.indexOf(delimiter);
          if (at === -1) {
            buf = buf.subarray(Math.max(0, buf.length - delimiter.length + 1));
            return;
          }
          buf = buf.subarray(at + delimiter.length);
          state = 'after-boundary';
          break;
        }
        case 'after-boundary': {
          if (buf.length < 2) return;
          if (buf[0] === 0x2d && buf[1] === 0x2d) {
            state = 'epilogue';
            break;
          }
          const eol = buf.indexOf('\r\n');
          if (eol === -1) {
            if (buf.length > 256) throw new MultipartError('invalid_multipart', 'garbage after a boundary');
            return;
          }
          // Transport padding (spaces/tabs) may follow a boundary before its CRLF.
          if (!/^[ \t]*$/.test(buf.subarray(0, eol).toString('latin1'))) throw new MultipartError('invalid_multipart', 'garbage after a boundary');
          buf = buf.subarray(eol + 2);
          state = 'headers';
          break;
        }
        case 'headers': {
          const end = buf.indexOf('\r\n\r\n');
          if (end === -1) {
            if (buf.length > maxHeaderBytes) throw new MultipartError('invalid_multipart', 'part headers too long');
            return;
          }
          parts += 1;
          if (parts > maxParts) throw new MultipartError('invalid_multipart', `more than ${maxParts} parts`);
          sink.onPart(parsePartHeaders(buf.subarray(0, end).toString('utf8')));
          buf = buf.subarray(end + 4);
          state = 'body';
          break;
        }
        case 'body': {
          const at = buf.indexOf(delimiter);
          if (at === -1) {
            // Keep a tail that could be the start of a delimiter split across chunks.
            const safe = buf.length - delimiter.length + 1;
            if (safe > 0) {
              sink.onData(buf.subarray(0, safe));
              buf = buf.subarray(safe);
            }
            return;
          }
          if (at > 0) sink.onData(buf.subarray(0, at));
          sink.onPartEnd();
          buf = buf.subarray(at + delimiter.length);
          state = 'after-boundary';
          break;
        }
        case 'epilogue':
          buf = Buffer.alloc(0);
          return;
      }
    }
  };

  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limits.maxBytes) throw new MultipartError('payload_too_large', `multipart body larger than ${limits.maxBytes} bytes`);
      buf = buf.length === 0 ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : Buffer.concat([buf, value]);
      step();
    }
    if (state !== 'epilogue') throw new MultipartError('invalid_multipart', 'the body ended before the closing boundary');
    return total;
  } catch (err) {
    // Not awaited: cancelling a tee'd branch (msw clones requests) settles only with the other branch.
    reader.cancel(err).catch(() => undefined);
    throw err;
  } finally {
    reader.releaseLock();
  }
}
