/**
 * Runs packaging/install.sh for real (bash, curl, sha256sum, the built agent) against a
 * temporary root (BYTEOR_INSTALL_ROOT) and the fake control plane over real HTTP, with fakes for
 * the commands that need root or a running systemd. The fakes record their argv; the fake
 * systemctl plays the service: `restart` runs the installed agent the way the unit's ExecStart
 * does, with the paths under the test root.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const INSTALL_SH = join(REPO, 'packaging/install.sh');
export const UNIT_FILE = join(REPO, 'packaging/systemd/byteor-agent.service');
/** The agent bundle: runs with node through its shebang, a fast stand-in for the standalone binary. */
export const BUNDLE = join(REPO, 'dist/byteor-agent.cjs');
/**
 * What the release serves as byteor-agent-linux-x64: the bundle, or the file named by
 * $BYTEOR_TEST_RELEASE_BINARY (CI sets it to the standalone binary for one extra run).
 */
export const RELEASE_BINARY = process.env.BYTEOR_TEST_RELEASE_BINARY === undefined || process.env.BYTEOR_TEST_RELEASE_BINARY === '' ? BUNDLE : resolve(REPO, process.env.BYTEOR_TEST_RELEASE_BINARY);
export const BINARY_NAME = 'byteor-agent-linux-x64';

export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function commandExists(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** strace works here (installed, and ptrace allowed). */
export function straceWorks(): boolean {
  return commandExists('strace') && spawnSync('strace', ['-f', '-qq', '-o', '/dev/null', 'true'], { stdio: 'ignore' }).status === 0;
}

export interface Release {
  dir: string;
  binary: Buffer;
  sums: string;
}

/** A release directory as the download route serves it: the "binary" and SHA256SUMS. */
export async function makeRelease(dir: string, binary: Buffer): Promise<Release> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, BINARY_NAME), binary, { mode: 0o755 });
  const sums = `${sha256(binary)}  ${BINARY_NAME}\n`;
  await writeFile(join(dir, 'SHA256SUMS'), sums);
  return { dir, binary, sums };
}

export type AgentMode = 'daemon' | 'advised' | 'once' | 'none';

const FAKE_SYSTEMCTL = String.raw`#!/usr/bin/env bash
# Fake systemctl: records its argv; restart/start run the installed agent in the background as
# the unit's ExecStart would (paths under the test root; StateDirectory= emulated by mkdir).
set -euo pipefail
printf 'systemctl %s\n' "$*" >>"$FAKE_LOG"
root=$BYTEOR_INSTALL_ROOT
pidfile=$FAKE_DIR/agent.pid
stop_agent() {
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
}
start_agent() {
  local args
  case ${"${"}FAKE_AGENT_MODE:-daemon} in
    none) return 0 ;;
    once) args=(run --once) ;;
    # Exactly the unit's ExecStart: intervals as the control plane advises them.
    advised) args=(run) ;;
    # The only deviation from the unit: a short heartbeat interval, so a restart's first
    # heartbeat (spread over one interval) comes within a second.
    *) args=(run --dev-heartbeat-interval 1) ;;
  esac
  mkdir -p -m 0700 "$root/var/lib/byteor-agent"
  "$root/usr/local/bin/byteor-agent" "${"${"}args[@]}" --config "$root/etc/byteor/agent.env" --state-dir "$root/var/lib/byteor-agent" \
    >>"$FAKE_DIR/agent.log" 2>&1 </dev/null &
  echo "$!" >"$pidfile"
}
case ${"${"}1:-} in
  start | restart) stop_agent; start_agent ;;
  stop) stop_agent ;;
  disable) [ "${"${"}2:-}" != --now ] || stop_agent ;;
esac
`;

/** useradd/groupadd/userdel/groupdel/chown: record argv; the account ones edit the root's files. */
function fakeAccountCommand(name: string): string {
  const effect: Record<string, string> = {
    groupadd: `echo "$last:x:990:" >>"$BYTEOR_INSTALL_ROOT/etc/group"`,
    useradd: `echo "$last:x:990:990:ByteOr Cloud agent:/var/lib/byteor-agent:/usr/sbin/nologin" >>"$BYTEOR_INSTALL_ROOT/etc/passwd"`,
    userdel: `sed -i "/^$last:/d" "$BYTEOR_INSTALL_ROOT/etc/passwd"`,
    groupdel: `sed -i "/^$last:/d" "$BYTEOR_INSTALL_ROOT/etc/group"`,
    chown: ':',
  };
  return `#!/usr/bin/env bash
set -euo pipefail
printf '${name} %s\\n' "$*" >>"$FAKE_LOG"
last=\${!#}
${effect[name] ?? ':'}
`;
}

export interface Host {
  /** BYTEOR_INSTALL_ROOT */
  root: string;
  /** Fakes, their log, the agent's log; outside the root. */
  fakeDir: string;
  /** The environment install.sh runs with (add the inputs per test). */
  env: Record<string, string>;
  /** Commands the fakes ran, one "name arg arg…" per call. */
  calls(): Promise<string[]>;
  agentLog(): Promise<string>;
  /** Stops the agent the fake systemctl started, if it still runs. */
  stopAgent(): Promise<void>;
  remove(): Promise<void>;
}

export async function makeHost(options: { systemd?: boolean; agentMode?: AgentMode; downloadBaseUrl?: string } = {}): Promise<Host> {
  const base = await mkdtemp(join(tmpdir(), 'byteor-install-'));
  const root = join(base, 'root');
  const fakeDir = join(base, 'fakes');
  const tmp = join(base, 'tmp');
  await mkdir(join(root, 'etc'), { recursive: true });
  if (options.systemd !== false) await mkdir(join(root, 'run/systemd/system'), { recursive: true });
  await mkdir(fakeDir, { recursive: true });
  await mkdir(tmp, { recursive: true });
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\n');
  const log = join(fakeDir, 'calls.log');
  await writeFile(log, '');
  await writeFile(join(fakeDir, 'systemctl'), FAKE_SYSTEMCTL, { mode: 0o755 });
  for (const name of ['useradd', 'groupadd', 'userdel', 'groupdel', 'chown']) {
    await writeFile(join(fakeDir, name), fakeAccountCommand(name), { mode: 0o755 });
  }

  const env: Record<string, string> = {
    // node for the bundle's shebang; nothing else from the test's environment.
    PATH: `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
    HOME: base,
    TMPDIR: tmp,
    LANG: 'C.UTF-8',
    BYTEOR_INSTALL_ROOT: root,
    BYTEOR_SYSTEMCTL: join(fakeDir, 'systemctl'),
    BYTEOR_USERADD: join(fakeDir, 'useradd'),
    BYTEOR_GROUPADD: join(fakeDir, 'groupadd'),
    BYTEOR_USERDEL: join(fakeDir, 'userdel'),
    BYTEOR_GROUPDEL: join(fakeDir, 'groupdel'),
    BYTEOR_CHOWN: join(fakeDir, 'chown'),
    FAKE_LOG: log,
    FAKE_DIR: fakeDir,
    FAKE_AGENT_MODE: options.agentMode ?? 'daemon',
    ...(options.downloadBaseUrl === undefined ? {} : { BYTEOR_DOWNLOAD_BASE_URL: options.downloadBaseUrl }),
  };

  const stopAgent = async (): Promise<void> => {
    const pidFile = join(fakeDir, 'agent.pid');
    if (!existsSync(pidFile)) return;
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    await rm(pidFile, { force: true });
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      return;
    }
    const deadline = Date.now() + 12_000;
    while (Date.now() < deadline) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    process.kill(pid, 'SIGKILL');
  };

  return {
    root,
    fakeDir,
    env,
    calls: async () => (await readFile(log, 'utf8')).split('\n').filter((line) => line !== ''),
    agentLog: async () => readFile(join(fakeDir, 'agent.log'), 'utf8').catch(() => ''),
    stopAgent,
    remove: async () => {
      await stopAgent();
      await rm(base, { recursive: true, force: true });
    },
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `bash <script> ...args` with the host's environment plus `env`. Detached: a session of its
 * own, so no controlling terminal (the installer would prompt for a token on /dev/tty).
 * With `straceTo`, every execve of it and its descendants is written there, argv in full.
 */
export function runInstaller(host: Host, args: string[], options: { env?: Record<string, string>; script?: string; straceTo?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const script = options.script ?? INSTALL_SH;
  const command = options.straceTo === undefined ? 'bash' : 'strace';
  const argv = options.straceTo === undefined ? [script, ...args] : ['-f', '-qq', '-s', '100000', '-e', 'trace=execve', '-o', options.straceTo, 'bash', script, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { cwd: host.fakeDir, env: { ...host.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      try {
        process.kill(-(child.pid ?? 0), 'SIGKILL');
      } catch {
        // already gone
      }
    }, options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every regular file under `dir`, as paths relative to it (sorted). */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (current: string): Promise<void> => {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out.push(relative(dir, path));
    }
  };
  await walk(dir);
  return out.sort();
}

/** Every directory and file under `dir` (relative, sorted): a snapshot to compare. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (current: string): Promise<void> => {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      out.push(`${relative(dir, path)}${entry.isDirectory() ? '/' : ''}`);
      if (entry.isDirectory()) await walk(path);
    }
  };
  await walk(dir);
  return out.sort();
}

/** Files under `dir` whose bytes contain `needle`. */
export async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  for (const file of await listFiles(dir)) {
    const bytes = await readFile(join(dir, file)).catch(() => Buffer.alloc(0));
    if (bytes.includes(needle)) hits.push(file);
  }
  return hits;
}

/**
 * A copy of the release binary that differs in its bytes and still runs (a "new release"): a
 * trailing comment for the bundle; trailing bytes, which the ELF loader ignores, for a binary.
 */
export async function rebuiltBinary(marker: string): Promise<Buffer> {
  const bytes = await readFile(RELEASE_BINARY);
  return Buffer.concat([bytes, Buffer.from(`\n// ${marker}\n`)]);
}
