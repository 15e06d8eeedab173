import { open, type FileHandle } from 'node:fs/promises';
import type { BodySource } from '../../api/multipart.js';
import { releaseConsumedChunks } from '../../util/gc.js';

/** A 64 MiB upload is 64 reads; at most two chunks (one being sent, one read ahead) are held. */
const CHUNK_BYTES = 1024 * 1024;
/** Sent chunks are freed after this many bytes (see util/gc.ts). */
const RELEASE_EVERY_BYTES = 4 * 1024 * 1024;

export class FileChangedError extends Error {
  constructor(path: string, expected: number, got: number) {
    super(`${path} changed while being uploaded (expected ${expected} bytes, found ${got})`);
    this.name = 'FileChangedError';
  }
}

export interface FileSourceOptions {
  type: string;
  /** The size that was hashed: exactly this many bytes are sent, or the stream fails. */
  size: number;
  /** Bytes read for sending so far (at most one chunk ahead of the connection). */
  onBytes?: ((sent: number) => void) | undefined;
}

/**
 * The file at `path` as an upload body source: opened on the first read (so a fresh handle per
 * attempt), read in 1 MiB chunks as fast as the connection takes them, one chunk ahead so the disk
 * read overlaps the socket write, closed at the end or on cancel. Never the whole file in memory.
 */
export function fileSource(path: string, options: FileSourceOptions): BodySource {
  return {
    size: options.size,
    type: options.type,
    stream(): ReadableStream<Uint8Array> {
      let handle: FileHandle | undefined;
      let position = 0;
      let sinceRelease = 0;
      const close = async (): Promise<void> => {
        const h = handle;
        handle = undefined;
        await h?.close();
      };
      return new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            try {
              handle ??= await open(path, 'r');
              if (position >= options.size) {
                await close();
                controller.close();
                return;
              }
              const buffer = Buffer.allocUnsafeSlow(Math.min(CHUNK_BYTES, options.size - position));
              const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
              if (bytesRead === 0) throw new FileChangedError(path, options.size, position);
              position += bytesRead;
              sinceRelease += bytesRead;
              if (sinceRelease >= RELEASE_EVERY_BYTES) {
                sinceRelease = 0;
                releaseConsumedChunks();
              }
              options.onBytes?.(position);
              controller.enqueue(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
            } catch (err) {
              await close().catch(() => undefined);
              controller.error(err);
            }
          },
          cancel: close,
        },
        // One chunk read ahead: measured, the upload otherwise idles the socket during each read.
        { highWaterMark: 1 },
      );
    },
  };
}
