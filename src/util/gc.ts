import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options?: { type?: 'minor' | 'major' }) => void;

let gc: GcFunction | undefined | null = null;

/**
 * Frees the buffers of chunks already consumed: handed to the socket (uploads) or to gzip
 * (packing). Each chunk is a fresh ArrayBuffer outside the JS heap; V8 only collects such garbage
 * once tens of MB of it have piled up (its external-memory soft limit), since streaming allocates
 * almost nothing on the JS heap to trigger a scavenge. Measured with 64 MiB: RSS growth during an
 * upload +35 MB without this, +7 MB with a minor GC (a scavenge: young objects only, about a
 * millisecond) every 4 MiB; packing +32 MB, +12 MB. The gc function comes from a fresh context
 * after enabling --expose-gc (the approach Jest uses); where that is unavailable this does nothing
 * and the memory is merely reclaimed later.
 */
export function releaseConsumedChunks(): void {
  if (gc === null) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as GcFunction | undefined;
    } catch {
      gc = undefined;
    }
  }
  gc?.({ type: 'minor' });
}
