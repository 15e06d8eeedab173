import { statfs } from 'node:fs/promises';

/** Bytes an unprivileged process may still write on the filesystem holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const info = await statfs(dir);
  return info.bavail * info.bsize;
}

/** A bundle needs room for the download and its extraction, with a margin: about 3× its size. */
export const FREE_SPACE_FACTOR = 3;

/** Bytes needed before downloading a bundle of `size`, `have` of which are already on disk. */
export function requiredFreeBytes(size: number, have: number): number {
  return Math.max(0, FREE_SPACE_FACTOR * size - have);
}
