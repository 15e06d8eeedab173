/** Why an archive was not extracted; `io_error` is the filesystem failing for another reason. */
export type ArchiveErrorReason = 'unsafe_archive' | 'archive_too_large' | 'disk_full' | 'io_error';

export class ArchiveError extends Error {
  constructor(
    readonly reason: ArchiveErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ArchiveError';
  }
}

const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT']);

export function isDiskFull(err: unknown): boolean {
  return DISK_FULL_CODES.has((err as NodeJS.ErrnoException | undefined)?.code ?? '');
}

/**
 * What an error out of the extraction pipeline means. node-tar in strict mode turns every
 * warning into an error carrying `tarCode` (TAR_BAD_ARCHIVE, TAR_ENTRY_INVALID, …); zlib errors
 * carry Z_* codes: both say the archive is broken or hostile.
 */
export function classifyExtractionError(err: unknown): ArchiveError {
  if (err instanceof ArchiveError) return err;
  const e = err as (Error & { code?: unknown; tarCode?: unknown; errno?: unknown }) | undefined;
  const message = e instanceof Error ? e.message : String(err);
  if (isDiskFull(err)) return new ArchiveError('disk_full', `the disk is full while extracting (${String(e?.code)})`, { cause: err });
  // A failed system call (EACCES, EIO, …) is the host's problem, even when node-tar reports it.
  if (typeof (err as { syscall?: unknown } | undefined)?.syscall === 'string') return new ArchiveError('io_error', `extraction failed: ${message}`, { cause: err });
  if (typeof e?.tarCode === 'string' || (typeof e?.code === 'string' && e.code.startsWith('TAR_'))) {
    return new ArchiveError('unsafe_archive', `not a valid tar archive: ${message}`, { cause: err });
  }
  if (typeof e?.code === 'string' && e.code.startsWith('Z_')) return new ArchiveError('unsafe_archive', `not a valid gzip stream: ${message}`, { cause: err });
  return new ArchiveError('io_error', `extraction failed: ${message}`, { cause: err });
}
