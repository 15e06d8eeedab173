import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

export default defineConfig({
  define: {
    // The same constant build.mjs bakes into the bundle, so tests see the real version.
    __BYTEOR_VERSION__: JSON.stringify(pkg.version),
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // e2e tests spawn the built bundle; they need `npm run build` first (.ci/run does it).
    restoreMocks: true,
  },
});
