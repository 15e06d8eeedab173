import { openAsBlob } from 'node:fs';
import type { AgentClient } from '../../api/client.js';
import type { ArtifactResponse, ArtifactType } from '../../api/types.js';
import type { Prepared } from './prepare.js';

export interface SendOptions {
  signal?: AbortSignal | undefined;
  labels?: Record<string, string>;
  /** Called with the file bytes handed to the connection so far (for a progress bar). */
  onProgress?: ((sent: number, total: number) => void) | undefined;
}

/**
 * A File-like view of `blob` whose stream() counts bytes as fetch pulls them. Duck-typed on
 * purpose: FormData re-wraps real Blob/File instances into new File objects whose stream() is
 * native (our override would be skipped), while a File-like object is wrapped by delegation, so
 * its stream() is the one read. The size stays known, so the request keeps its Content-Length.
 */
export function countingFile(blob: Blob, name: string, onBytes: (sent: number) => void): Blob {
  let sent = 0;
  const like = {
    name,
    type: blob.type,
    size: blob.size,
    lastModified: 0,
    [Symbol.toStringTag]: 'File',
    stream: (): ReadableStream<Uint8Array> =>
      blob.stream().pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            sent += chunk.byteLength;
            onBytes(sent);
            controller.enqueue(chunk);
          },
        }),
      ),
    arrayBuffer: (): Promise<ArrayBuffer> => blob.arrayBuffer(),
    text: (): Promise<string> => blob.text(),
    slice: (start?: number, end?: number, type?: string): Blob => blob.slice(start, end, type),
  };
  // Cast: FormData accepts any object shaped like a File (see above); TypeScript wants a Blob.
  return like as unknown as Blob;
}

/**
 * One upload attempt (API.md §6): multipart metadata + file, the file streamed from disk through a
 * fresh file-backed Blob (never a buffer, never one reused across attempts).
 */
export async function sendArtifact(client: AgentClient, type: ArtifactType, prepared: Prepared, options: SendOptions = {}): Promise<ArtifactResponse & { status: number }> {
  const blob = await openAsBlob(prepared.path, { type: prepared.contentType });
  const onProgress = options.onProgress;
  const file = onProgress === undefined ? blob : countingFile(blob, prepared.filename, (sent) => onProgress(sent, prepared.size));
  return client.uploadArtifact({
    metadata: {
      type,
      sha256: prepared.sha256,
      size_bytes: prepared.size,
      captured_at: prepared.capturedAt,
      filename: prepared.filename,
      labels: options.labels ?? {},
    },
    file,
    signal: options.signal,
    // A 64 MiB upload on a slow link takes long; the dispatcher's idle timeouts still bound a stall.
    timeoutMs: null,
  });
}
