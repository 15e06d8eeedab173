import { loadConfig, type Config, type ConfigFlags } from '../config/config.js';
import { registerSecret } from '../log.js';
import type { CommandContext } from './context.js';

/**
 * Every command's way to its configuration: loads and validates it, then points the HTTP stack at
 * the proxies it names (agent.env may set them; the systemd unit passes no environment).
 */
export async function loadCommandConfig(flags: ConfigFlags, ctx: CommandContext): Promise<Config> {
  const config = await loadConfig({ flags, env: ctx.env });
  for (const value of Object.values(config.proxyEnv)) {
    // Proxy URLs may carry a password; it must never reach a log line.
    const password = /^[a-z]+:\/\/[^:@/]*:([^@/]+)@/i.exec(value)?.[1];
    if (password !== undefined) registerSecret(decodeURIComponent(password));
  }
  ctx.configureNetwork?.(config.proxyEnv);
  return config;
}
