import type { AgentClient } from '../../api/client.js';
import type { ArtifactResponse, ArtifactType } from '../../api/types.js';
import { fileSource } from './file-source.js';
import type { Prepared } from './prepare.js';

export interface SendOptions {
  signal?: AbortSignal | undefined;
  labels?: Record<string, string>;
  /** Called with the file bytes handed to the connection so far (for a progress bar). */
  onProgress?: ((sent: number, total: number) => void) | undefined;
}

/**
 * One upload attempt (API.md §6): multipart metadata + file, the file streamed from disk through a
 * fresh handle (never the whole file in memory, never a handle reused across attempts).
 */
export async function sendArtifact(client: AgentClient, type: ArtifactType, prepared: Prepared, options: SendOptions = {}): Promise<ArtifactResponse & { status: number }> {
  const onProgress = options.onProgress;
  const file = fileSource(prepared.path, {
    type: prepared.contentType,
    size: prepared.size,
    onBytes: onProgress === undefined ? undefined : (sent) => onProgress(sent, prepared.size),
  });
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
