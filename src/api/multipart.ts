import { randomBytes } from 'node:crypto';

/** What an artifact's bytes come from: a Blob, or anything else that streams with a known size. */
export interface BodySource {
  readonly size: number;
  readonly type: string;
  stream(): ReadableStream<Uint8Array>;
}

export interface EncodedForm {
  body: ReadableStream<Uint8Array>;
  contentType: string;
  /** Known up front, so the upload carries Content-Length (gateways refuse chunked uploads). */
  contentLength: number;
}

/** As FormData serialises names (WHATWG HTML "multipart/form-data encoding algorithm"). */
function quoted(value: string): string {
  return value.replace(/\r/g, '%0D').replace(/\n/g, '%0A').replace(/"/g, '%22');
}

/**
 * multipart/form-data (RFC 7578) with two parts in order, `metadata` (JSON) then `file`, written by
 * hand as a stream: undici's FormData encoder reads a file-backed Blob in 64 KiB chunks with
 * read-ahead (measured: 2x the time and ~85 MB more RSS for 64 MiB), while this pulls the file
 * source only as fast as the connection takes it.
 */
export function encodeArtifactForm(metadataJson: string, file: BodySource, filename: string): EncodedForm {
  const boundary = `----byteor-${randomBytes(16).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="metadata"\r\nContent-Type: application/json\r\n\r\n${metadataJson}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${quoted(filename)}"\r\nContent-Type: ${file.type === '' ? 'application/octet-stream' : file.type}\r\n\r\n`,
    'utf8',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8');
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  let stage: 'head' | 'file' | 'tail' = 'head';
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (stage === 'head') {
          stage = 'file';
          reader = file.stream().getReader();
          controller.enqueue(head);
          return;
        }
        if (stage === 'file' && reader !== undefined) {
          const { done, value } = await reader.read();
          if (!done) {
            controller.enqueue(value);
            return;
          }
          stage = 'tail';
        }
        controller.enqueue(tail);
        controller.close();
      },
      async cancel(reason) {
        await reader?.cancel(reason);
      },
    },
    // Pull-driven: nothing is read ahead of what the connection has taken.
    { highWaterMark: 0 },
  );
  return { body, contentType: `multipart/form-data; boundary=${boundary}`, contentLength: head.length + file.size + tail.length };
}
