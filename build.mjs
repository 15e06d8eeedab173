// Bundles the agent into one CommonJS file that runs on any Node >= 20:
//   node build.mjs          -> dist/byteor-agent.cjs
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
