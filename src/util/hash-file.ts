import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { AbortedError } from '../errors.js';

/** sha256 and size of a file, streamed: an artifact is never read into memory whole. */
export async function sha256File(path: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024, ...(signal === undefined ? {} : { signal }) }) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
  } catch (err) {
    if (signal?.aborted === true) throw new AbortedError('hashing aborted by shutdown');
    throw err;
  }
  return { sha256: hash.digest('hex'), size };
}
