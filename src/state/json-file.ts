import { readFile, rename } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomic-write.js';

export type LoadResult<T> =
  | { kind: 'loaded'; value: T }
  | { kind: 'missing' }
  /** The file was unreadable or invalid and has been moved aside to `movedTo`. */
  | { kind: 'corrupt'; movedTo: string | undefined; problem: string };

/**
 * Reads a JSON state file, checking it with `validate` (which returns the problem or undefined).
 * A corrupt file is renamed to `<file>.corrupt-<time>` so the agent starts clean instead of
 * crash-looping, and the evidence is kept for a human.
 */
export async function loadJsonFile<T>(path: string, validate: (value: unknown) => string | undefined, now: () => number = Date.now): Promise<LoadResult<T>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    return setAside(path, `unreadable (${code ?? 'error'})`, now);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return setAside(path, 'not valid JSON', now);
  }
  const problem = validate(value);
  if (problem !== undefined) return setAside(path, problem, now);
  return { kind: 'loaded', value: value as T };
}

async function setAside<T>(path: string, problem: string, now: () => number): Promise<LoadResult<T>> {
  const stamp = new Date(now()).toISOString().replace(/[:.]/g, '-');
  const movedTo = `${path}.corrupt-${stamp}`;
  try {
    await rename(path, movedTo);
    return { kind: 'corrupt', movedTo, problem };
  } catch {
    return { kind: 'corrupt', movedTo: undefined, problem };
  }
}

export async function saveJsonFile(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
}
