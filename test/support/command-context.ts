import { Readable } from 'node:stream';
import type { CommandContext } from '../../src/commands/context.js';
import { LogCapture } from './log-capture.js';

export interface CapturedContext {
  ctx: CommandContext;
  stdout: string[];
  stderr: string[];
  logs: LogCapture;
  controller: AbortController;
}

/** A CommandContext whose output, logs and signals the test owns. */
export function captureContext(options: { env?: NodeJS.ProcessEnv; stdin?: string; isTty?: boolean } = {}): CapturedContext {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const logs = new LogCapture();
  const controller = new AbortController();
  const ctx: CommandContext = {
    env: options.env ?? {},
    stdout: (text) => stdout.push(text),
    stderr: (text) => stderr.push(text),
    stdin: Readable.from(options.stdin === undefined ? [] : [Buffer.from(options.stdin)]),
    isTty: options.isTty ?? false,
    signal: controller.signal,
    logDestination: logs,
  };
  return { ctx, stdout, stderr, logs, controller };
}
