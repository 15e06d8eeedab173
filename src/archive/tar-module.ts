import type * as Tar from 'tar';

let loaded: Promise<typeof Tar> | undefined;

/**
 * node-tar, loaded on first use: a running agent that never extracts or packs (most of its life)
 * does not pay the ~9 MB of heap it costs once evaluated.
 */
export function loadTar(): Promise<typeof Tar> {
  loaded ??= import('tar');
  return loaded;
}
