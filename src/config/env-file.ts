import { readFile, stat } from 'node:fs/promises';
import { parse as dotenvParse } from 'dotenv';
import { writeFileAtomic } from '../util/atomic-write.js';

/**
 * The one line syntax that dotenv and systemd's EnvironmentFile= read identically:
 * `KEY='value'`, no `export`, no trailing comment, a value without `'`, CR, LF or NUL that does
 * not end with a backslash. Anything else is refused rather than written ambiguously.
 */
const KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Why `value` cannot be written safely, or undefined when it can. */
export function unrepresentableReason(value: string): string | undefined {
  if (value.includes('\0')) return 'contains a NUL byte';
  if (value.includes('\n') || value.includes('\r')) return 'contains a line break';
  if (value.includes("'")) return "contains a single quote (')";
  if (value.endsWith('\\')) return 'ends with a backslash';
  return undefined;
}

export class EnvFileValueError extends Error {
  readonly key: string;
  constructor(key: string, reason: string) {
    super(`${key} cannot be stored in the env file: its value ${reason}`);
    this.name = 'EnvFileValueError';
    this.key = key;
  }
}

export function formatEnvLine(key: string, value: string): string {
  if (!KEY_PATTERN.test(key)) throw new EnvFileValueError(key, 'has an invalid variable name');
  const reason = unrepresentableReason(value);
  if (reason !== undefined) throw new EnvFileValueError(key, reason);
  return `${key}='${value}'`;
}

export function parseEnvText(text: string): Record<string, string> {
  return dotenvParse(text);
}

/** The key a line assigns, or undefined for blank lines and comments. */
function assignedKey(line: string): string | undefined {
  const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=/.exec(line);
  return match?.[1];
}

/**
 * Lines that dotenv and systemd may read differently (hand edits). Used by `doctor` to warn,
 * never to rewrite what the sysadmin wrote.
 */
export function ambiguousLines(text: string): { line: number; key: string | undefined }[] {
  const out: { line: number; key: string | undefined }[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const key = assignedKey(line);
    const safe = /^([A-Za-z_][A-Za-z0-9_]*)='([^'\r\n\0]*)'$/.exec(line);
    if (safe === null || (safe[2] ?? '').endsWith('\\')) out.push({ line: index + 1, key });
  });
  return out;
}

/**
 * Applies `changes` to env-file text: a string sets the key (replacing its line in place),
 * null removes it. Comments and other keys are kept as the sysadmin wrote them.
 */
export function updateEnvText(text: string, changes: Record<string, string | null>): string {
  const pending = new Map(Object.entries(changes));
  const written = new Set<string>();
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  for (const line of lines) {
    const key = assignedKey(line);
    if (key === undefined || !pending.has(key)) {
      out.push(line);
      continue;
    }
    // Only the first assignment is replaced; later duplicates of a changed key are dropped so the
    // file cannot say two things.
    if (written.has(key)) continue;
    written.add(key);
    const value = pending.get(key);
    if (typeof value === 'string') out.push(formatEnvLine(key, value));
  }
  for (const [key, value] of pending) {
    if (!written.has(key) && typeof value === 'string') out.push(formatEnvLine(key, value));
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

export async function readEnvFile(path: string): Promise<{ text: string; values: Record<string, string> } | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return { text, values: parseEnvText(text) };
}

/**
 * Rewrites the env file atomically with `changes` applied. A new file is 0600; an existing
 * file keeps its mode when that is 0600 or 0640 (group-readable by the service) and its owner.
 */
export async function writeEnvFile(path: string, changes: Record<string, string | null>): Promise<void> {
  const existing = await readEnvFile(path);
  const next = updateEnvText(existing?.text ?? '', changes);
  let mode = 0o600;
  let uid: number | undefined;
  let gid: number | undefined;
  if (existing !== undefined) {
    const info = await stat(path);
    if ((info.mode & 0o777) === 0o640) mode = 0o640;
    if (process.getuid?.() === 0) {
      uid = info.uid;
      gid = info.gid;
    }
  }
  await writeFileAtomic(path, next, { mode, ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}) });
}
