// Bundles the agent into one CommonJS file that runs on any Node >= 20:
//   node build.mjs          -> dist/byteor-agent.cjs
//   node build.mjs --sea    -> also dist/byteor-agent-linux-x64, the standalone binary (Node 24
//                              inside; see packaging/sea/build-sea.mjs), dist/install.sh, dist/SHA256SUMS
import { build } from 'esbuild';
import { chmod, mkdir, readFile } from 'node:fs/promises';

const pkg = JSON.parse(await readFile(new URL('./package.json', import.meta.url), 'utf8'));
const outfile = 'dist/byteor-agent.cjs';

await mkdir('dist', { recursive: true });
await build({
  entryPoints: ['src/main.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  banner: { js: '#!/usr/bin/env node' },
  define: { __BYTEOR_VERSION__: JSON.stringify(pkg.version) },
  legalComments: 'none',
  logLevel: 'warning',
});
await chmod(outfile, 0o755);
console.log(`built ${outfile} (byteor-agent ${pkg.version})`);

if (process.argv.includes('--sea')) {
  const { buildSea } = await import('./packaging/sea/build-sea.mjs');
  await buildSea({ bundle: outfile, version: pkg.version });
}
