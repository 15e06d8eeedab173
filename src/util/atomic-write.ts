import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** File mode of the new file; applied at creation so the content is never readable by others. */
  mode?: number;
  /** Owner to give the file (needs privilege); left as the writer's when omitted. */
  uid?: number;
  gid?: number;
}

/** A temp-file name in the same directory, so the final rename never crosses filesystems. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** fsync a directory so a rename inside it survives power loss. */
export async function fsyncDirectory(dir: string): Promise<void> {
  await fsyncPath(dir);
}

/** fsync a file or directory by path (opened read-only). */
export async function fsyncPath(path: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r');
    await handle.sync();
  } catch (err) {
    // Some filesystems refuse fsync on a directory (EINVAL/EISDIR); the rename is still atomic there.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw err;
  } finally {
    await handle?.close();
  }
}

/**
 * Replace `path` with `data` so that a crash at any instant leaves either the old or the new
 * content: write a temp file in the same directory, fsync it, rename it over, fsync the directory.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const temp = tempPathFor(path);
  const mode = options.mode ?? 0o600;
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx', mode);
    // open() applies the umask; chmod makes the mode exact (e.g. 0640 for the service group).
    await handle.chmod(mode);
    if (options.uid !== undefined || options.gid !== undefined) {
      await handle.chown(options.uid ?? -1, options.gid ?? -1);
    }
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await fsyncDirectory(dirname(path));
}
