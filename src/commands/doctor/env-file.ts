import { readFile, stat } from 'node:fs/promises';
import { ambiguousLines } from '../../config/env-file.js';
import { fail, pass, warn, type CheckResult } from './check.js';

/** The account the systemd unit runs as (User=byteor-agent), when it exists on this host. */
export interface ServiceAccount {
  name: string;
  uid: number;
  gid: number;
}

export interface EnvFileFacts {
  path: string;
  /** undefined: the file does not exist. */
  stat: { uid: number; gid: number; mode: number; isFile: boolean } | { error: string } | undefined;
  /** The text, or the errno code that stopped us reading it. */
  text: { ok: string } | { error: string } | undefined;
  /** Our effective uid (undefined on platforms without one). */
  euid: number | undefined;
  serviceAccount: ServiceAccount | undefined;
  /** Whether everything `run` needs came from flags or the process environment instead. */
  identityElsewhere: boolean;
}

const octal = (mode: number): string => `0${(mode & 0o777).toString(8).padStart(3, '0')}`;

/** Pure: is the mode safe for a file holding the runtime key? */
export function judgeEnvFileMode(mode: number, path: string): CheckResult {
  const name = 'env file mode';
  const bits = mode & 0o777;
  if ((bits & 0o004) !== 0) return fail(name, `${octal(bits)}: world-readable, so every user on this host can read the runtime key`, `chmod 0640 ${path} (or 0600), then re-enroll (byteor-agent enroll --force): treat the key as leaked`);
  if ((bits & 0o002) !== 0) return fail(name, `${octal(bits)}: world-writable, so any user can point the agent at another API or key`, `chmod 0640 ${path}`);
  if ((bits & 0o020) !== 0) return warn(name, `${octal(bits)}: group-writable, so the group can change the API URL and key the agent trusts`, `chmod 0640 ${path}`);
  if ((bits & 0o001) !== 0) return warn(name, `${octal(bits)}: others may traverse/execute it; expected 0600 or 0640`, `chmod 0640 ${path}`);
  if (bits === 0o600 || bits === 0o640) return pass(name, octal(bits));
  return warn(name, `${octal(bits)}: expected 0600, or 0640 with the service's group`, `chmod 0640 ${path}`);
}

/**
 * Pure: who owns it. Root ownership matters on a host install (whoever owns the file decides which
 * API and key the agent trusts); a developer running as themselves has no root to hand it to.
 */
export function judgeEnvFileOwner(uid: number, euid: number | undefined, path: string): CheckResult {
  const name = 'env file owner';
  if (uid === 0) return pass(name, 'owned by root');
  if (euid === 0) {
    return warn(
      name,
      `owned by uid ${uid}, not root: that account can rewrite the API URL and key the agent trusts (and the agent's own rewrites keep that owner)`,
      `chown root:byteor-agent ${path}`,
    );
  }
  return pass(name, `owned by uid ${uid}${uid === euid ? ' (you)' : ''}; fine for a development setup (a host install has it owned by root, which only root can check)`);
}

/**
 * Pure: can the service account read it? The unit runs `run` as byteor-agent, which reads the file
 * itself; root:byteor-agent 0640 is what the installer writes.
 */
export function judgeServiceAccess(stat: { uid: number; gid: number; mode: number }, account: ServiceAccount | undefined, path: string): CheckResult | undefined {
  if (account === undefined || stat.uid === account.uid) return undefined;
  const name = 'env file access';
  const groupReadable = (stat.mode & 0o040) !== 0;
  if (groupReadable && stat.gid === account.gid) return pass(name, `readable by the service account ${account.name} through its group`);
  return fail(
    name,
    `the service runs as ${account.name} (uid ${account.uid}), which cannot read this file (${groupReadable ? `its group is gid ${stat.gid}, not ${account.gid}` : 'not group-readable'}); \`run\` would stop with exit 78`,
    `chgrp ${account.name} ${path} && chmod 0640 ${path}`,
  );
}

const ASSIGNMENT = /^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.-]*\s*=/;

/** Pure: lines neither parser reads, and lines systemd and dotenv may read differently. No value is ever echoed. */
export function judgeEnvFileSyntax(text: string, path: string): CheckResult[] {
  const out: CheckResult[] = [];
  const lines = text.split('\n');
  const garbage: number[] = [];
  lines.forEach((raw, index) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    if (!ASSIGNMENT.test(line)) garbage.push(index + 1);
  });
  if (text.includes('\0')) {
    out.push(fail('env file syntax', 'contains NUL bytes: not a text file', `rewrite ${path} as KEY='value' lines, or re-run the installer`));
    return out;
  }
  if (garbage.length > 0) {
    out.push(warn('env file syntax', `line ${garbage.join(', ')}: not KEY=value, so it is ignored`, `fix or remove line ${garbage.join(', ')} in ${path}`));
  } else {
    out.push(pass('env file syntax', 'every line is a comment or a KEY=value assignment'));
  }
  const ambiguous = ambiguousLines(text).filter((entry) => entry.key !== undefined);
  if (ambiguous.length > 0) {
    const where = ambiguous.map((entry) => `line ${entry.line} (${entry.key ?? '?'})`).join(', ');
    out.push(
      warn(
        'env file quoting',
        `${where}: not in the form KEY='value', so systemd's EnvironmentFile= and dotenv may read different values (quotes, #, backslashes, export)`,
        `write each as KEY='value' with no export and no trailing comment (values cannot contain ' or end with \\)`,
      ),
    );
  } else {
    out.push(pass('env file quoting', "every assignment is KEY='value', read identically by systemd and dotenv"));
  }
  return out;
}

/** Pure: every env-file check from what was found on disk. */
export function judgeEnvFile(facts: EnvFileFacts): CheckResult[] {
  const { path } = facts;
  if (facts.stat === undefined) {
    if (facts.identityElsewhere) return [pass('env file', `${path} does not exist; the configuration comes from flags and the process environment`)];
    return [fail('env file', `${path} does not exist`, `install with the one-line installer, or enroll: BYTEOR_ENROLLMENT_TOKEN=… byteor-agent enroll --config ${path} (or point --config / BYTEOR_ENV_FILE at the right file)`)];
  }
  if ('error' in facts.stat) return [fail('env file', `cannot examine ${path} (${facts.stat.error})`, 'run doctor as root (sudo byteor-agent doctor)')];
  if (!facts.stat.isFile) return [fail('env file', `${path} is not a regular file`, 'point --config (or BYTEOR_ENV_FILE) at the agent.env file itself')];
  const out: CheckResult[] = [pass('env file', `${path} exists`)];
  out.push(judgeEnvFileOwner(facts.stat.uid, facts.euid, path));
  out.push(judgeEnvFileMode(facts.stat.mode, path));
  const access = judgeServiceAccess(facts.stat, facts.serviceAccount, path);
  if (access !== undefined) out.push(access);
  if (facts.text === undefined || 'error' in facts.text) {
    const code = facts.text !== undefined && 'error' in facts.text ? facts.text.error : 'unknown';
    out.push(fail('env file syntax', `cannot read ${path} (${code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code})`, 'run doctor as root (sudo byteor-agent doctor)'));
    return out;
  }
  out.push(...judgeEnvFileSyntax(facts.text.ok, path));
  return out;
}

/** Reads what judgeEnvFile needs; never writes. */
export async function gatherEnvFileFacts(
  path: string,
  context: { euid: number | undefined; serviceAccount: ServiceAccount | undefined; identityElsewhere: boolean },
): Promise<EnvFileFacts> {
  let info: EnvFileFacts['stat'];
  try {
    const s = await stat(path);
    info = { uid: s.uid, gid: s.gid, mode: s.mode, isFile: s.isFile() };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    info = code === 'ENOENT' ? undefined : { error: code === 'EACCES' ? 'permission denied' : code };
  }
  let text: EnvFileFacts['text'];
  if (info !== undefined && 'isFile' in info && info.isFile) {
    try {
      text = { ok: await readFile(path, 'utf8') };
    } catch (err) {
      text = { error: (err as NodeJS.ErrnoException).code ?? 'unreadable' };
    }
  }
  return { path, stat: info, text, ...context };
}

/** The unit's User= account from /etc/passwd, if this host has one. */
export async function findServiceAccount(passwdPath = '/etc/passwd', name = 'byteor-agent'): Promise<ServiceAccount | undefined> {
  let text: string;
  try {
    text = await readFile(passwdPath, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields.length >= 4) {
      const uid = Number(fields[2]);
      const gid = Number(fields[3]);
      if (Number.isInteger(uid) && Number.isInteger(gid)) return { name, uid, gid };
    }
  }
  return undefined;
}
