// build.mjs and vitest.config.ts both define this constant from package.json.
declare const __BYTEOR_VERSION__: string | undefined;

export const AGENT_VERSION: string =
  typeof __BYTEOR_VERSION__ === 'string' ? __BYTEOR_VERSION__ : '0.0.0-dev';

export function userAgent(): string {
  return `byteor-agent/${AGENT_VERSION} (node/${process.versions.node}; ${process.platform}; ${process.arch})`;
}
