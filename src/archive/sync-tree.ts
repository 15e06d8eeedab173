import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDirectory } from '../util/atomic-write.js';

const PARALLEL = 8;

/**
 * fsyncs every file and directory below `dir` (and `dir` itself), so that once a rename makes the
 * tree visible its contents survive a power loss too: a rename can reach the disk before the
 * data of the files it names.
 */
export async function syncTree(dir: string): Promise<void> {
  const files: string[] = [];
  const dirs: string[] = [dir];
  for (let i = 0; i < dirs.length; i += 1) {
    const current = dirs[i] as string;
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) dirs.push(path);
      else if (entry.isFile()) files.push(path);
    }
  }
  // A few flushes in flight at once: the device merges them; one at a time waits on each.
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const handle = await open(files[next++] as string, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, files.length) }, worker));
  for (const d of dirs.reverse()) await fsyncDirectory(d);
}
