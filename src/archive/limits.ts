/** Caps on what one bundle may unpack to. Anything past a cap is `archive_too_large`. */
export interface ArchiveLimits {
  /** Entries (files and directories). */
  maxEntries: number;
  /** Sum of regular files' sizes, as declared by their headers (tar sizes are exact). */
  maxTotalBytes: number;
  /** Path segments, e.g. a/b/c is 3. */
  maxDepth: number;
  /** Bytes (UTF-8) of a relative path. */
  maxPathBytes: number;
  /** Bytes of one path segment (NAME_MAX on Linux filesystems). */
  maxNameBytes: number;
  /**
   * Decompressed bytes not accounted for by entry headers and bodies: pax/long-name metadata and
   * end-of-archive padding. A gzip bomb of zeros (no entries at all) trips this at once, and it
   * bounds what node-tar buffers after the end-of-archive marker.
   */
  maxUnaccountedBytes: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = {
  maxEntries: 10_000,
  maxTotalBytes: 1024 * 1024 * 1024,
  maxDepth: 64,
  maxPathBytes: 1024,
  maxNameBytes: 255,
  maxUnaccountedBytes: 32 * 1024 * 1024,
};

export function archiveLimits(overrides: Partial<ArchiveLimits> = {}): ArchiveLimits {
  return { ...DEFAULT_ARCHIVE_LIMITS, ...overrides };
}
