import { stat } from 'node:fs/promises';
import { placeBytes } from '../agent/outbox/place.js';
import { buildSnapshot } from '../agent/snapshot.js';
import { type ConfigFlags } from '../config/config.js';
import { loadCommandConfig } from './load-config.js';
import { AgentError, ExitCode } from '../errors.js';
import { StateLayout } from '../state/layout.js';
import { formatBytes } from '../util/format.js';
import type { CommandContext } from './context.js';

export interface SnapshotDeps {
  now?: () => number;
}

/** `snapshot-2026-12-04T19-40-00-123Z.json`: sortable, and a valid file name everywhere. */
export function snapshotName(nowMs: number): string {
  return `snapshot-${new Date(nowMs).toISOString().replace(/:/g, '-')}.json`;
}

/** `byteor-agent snapshot`: queues a `snapshot` artifact of the agent's own state in the outbox. */
export async function runSnapshot(options: ConfigFlags, ctx: CommandContext, deps: SnapshotDeps = {}): Promise<number> {
  const now = deps.now ?? Date.now;
  const config = await loadCommandConfig(options, ctx);
  const info = await stat(config.stateDir).catch(() => undefined);
  if (info?.isDirectory() !== true) {
    throw new AgentError(`the agent's state directory ${config.stateDir} does not exist: is the agent installed and has it started once? (pass --state-dir if it lives elsewhere)`, ExitCode.unavailable);
  }
  const layout = new StateLayout(config.stateDir);
  const doc = await buildSnapshot({ config, layout, now });
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  let placed;
  try {
    placed = await placeBytes(layout, 'snapshot', snapshotName(now()), text);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new AgentError(`cannot write to ${layout.outboxDir}: permission denied (run as root or as the byteor-agent user)`, ExitCode.noPermission);
    if (code === 'ENOSPC') throw new AgentError(`no space left to write a snapshot in ${layout.outboxDir}`, ExitCode.tempFail);
    throw err;
  }
  ctx.stdout(`queued snapshot ${placed.path} (${formatBytes(Buffer.byteLength(text))}); the running agent uploads it shortly (see byteor-agent status)`);
  return ExitCode.ok;
}
