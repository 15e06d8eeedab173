import { chmod, mkdir, stat } from 'node:fs/promises';
import { StateLayout } from './layout.js';

export class StateDirError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StateDirError';
  }
}

/**
 * Creates the state directory (0700: it holds the downloaded bundles and artifacts awaiting
 * upload) and its subdirectories, and checks that it is writable, before anything runs.
 */
export async function openStateDir(root: string): Promise<StateLayout> {
  const layout = new StateLayout(root);
  try {
    await mkdir(root, { recursive: true, mode: 0o700 });
    const info = await stat(root);
    if (!info.isDirectory()) throw new StateDirError(`${root} exists but is not a directory`);
    // Group/other access is never needed; a directory created by hand with 0755 is tightened.
    if ((info.mode & 0o077) !== 0 && info.uid === process.getuid?.()) await chmod(root, 0o700);
    for (const dir of [layout.bundlesDir, layout.downloadsDir, layout.outboxDir]) await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if (err instanceof StateDirError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === 'EACCES' || code === 'EPERM'
        ? 'run as the byteor-agent user (systemd creates it via StateDirectory=) or fix its owner'
        : code === 'EROFS'
          ? 'the filesystem is read-only; point BYTEOR_STATE_DIR at a writable place'
          : code === 'ENOSPC'
            ? 'the disk is full'
            : 'check the path';
    throw new StateDirError(`cannot use state directory ${root} (${code ?? String(err)}): ${hint}`, { cause: err });
  }
  return layout;
}
