import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { AbortedError } from '../errors.js';

const CHUNK_BYTES = 256 * 1024;

/**
 * sha256 and size of a file, streamed through one reused buffer: an artifact is never read into
 * memory whole, and hashing 64 MiB leaves no garbage behind (a stream would allocate a fresh
 * buffer per chunk, which V8 frees only after tens of MB have piled up).
 */
export async function sha256File(path: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  let size = 0;
  const handle = await open(path, 'r');
  try {
    for (;;) {
      if (signal?.aborted === true) throw new AbortedError('hashing aborted by shutdown');
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
      if (bytesRead === 0) break;
      // update() consumes the bytes synchronously, so the buffer can be refilled right away.
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return { sha256: hash.digest('hex'), size };
}
