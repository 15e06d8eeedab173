import type { Jwks } from '../api/types.js';
import { validateKeySet, type TrustedKey } from '../crypto/keyset.js';
import type { Logger } from '../log.js';
import { loadJsonFile, saveJsonFile } from '../state/json-file.js';

interface KeysFile {
  version: 1;
  fetched_at: string;
  etag: string | null;
  keys: TrustedKey['jwk'][];
}

function keysFileProblem(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return 'not a JSON object';
  const v = value as Partial<KeysFile>;
  if (v.version !== 1) return 'unsupported version';
  if (!Array.isArray(v.keys)) return 'keys is not a list';
  return undefined;
}

export type KeySetUpdate =
  | { kind: 'replaced'; added: string[]; removed: string[]; dropped: { kid: string | undefined; reason: string }[] }
  | { kind: 'rejected'; reason: string };

/**
 * The last good signing-key set (keys.json). A refresh that returns garbage never replaces it;
 * a well-formed set replaces it entirely, because a key absent from the latest set is no longer
 * trusted (API.md §5).
 */
export class KeyStore {
  private constructor(
    private readonly path: string,
    private current: KeysFile | undefined,
    private readonly now: () => number,
  ) {}

  static async open(path: string, logger: Logger, now: () => number): Promise<KeyStore> {
    const result = await loadJsonFile<KeysFile>(path, keysFileProblem, now);
    if (result.kind === 'corrupt') {
      logger.warn({ path, problem: result.problem, movedTo: result.movedTo }, 'signing-key file was corrupt; set aside, keys will be fetched again');
    }
    const store = new KeyStore(path, result.kind === 'loaded' ? result.value : undefined, now);
    // Re-validate what was on disk: keys may have expired while the agent was down.
    if (store.current !== undefined) store.current.keys = validateKeySet({ keys: store.current.keys }, now()).keys.map((k) => k.jwk);
    return store;
  }

  get hasKeys(): boolean {
    return this.current !== undefined;
  }

  get etag(): string | undefined {
    return this.current?.etag ?? undefined;
  }

  get fetchedAt(): string | undefined {
    return this.current?.fetched_at;
  }

  /** Trusted, unexpired keys now. */
  keys(): TrustedKey[] {
    if (this.current === undefined) return [];
    return validateKeySet({ keys: this.current.keys }, this.now()).keys;
  }

  kids(): string[] {
    return this.keys().map((k) => k.kid);
  }

  async replace(jwks: Jwks, etag: string | undefined): Promise<KeySetUpdate> {
    const { keys, dropped } = validateKeySet(jwks, this.now());
    // Entries that are all unusable look like a broken response, not a rotation: keep the last good set.
    if (keys.length === 0 && jwks.keys.length > 0 && dropped.some((d) => d.reason !== 'expired')) {
      return { kind: 'rejected', reason: `no usable key among ${jwks.keys.length} entries (${dropped.map((d) => `${d.kid ?? '?'}: ${d.reason}`).join('; ')})` };
    }
    const before = new Set(this.kids());
    const next: KeysFile = { version: 1, fetched_at: new Date(this.now()).toISOString(), etag: etag ?? null, keys: keys.map((k) => k.jwk) };
    await saveJsonFile(this.path, next);
    this.current = next;
    const after = new Set(keys.map((k) => k.kid));
    return {
      kind: 'replaced',
      added: [...after].filter((kid) => !before.has(kid)),
      removed: [...before].filter((kid) => !after.has(kid)),
      dropped,
    };
  }

  /** A 304: the set is unchanged; remember that it was confirmed now. */
  async confirm(): Promise<void> {
    if (this.current === undefined) return;
    this.current = { ...this.current, fetched_at: new Date(this.now()).toISOString() };
    await saveJsonFile(this.path, this.current);
  }
}
