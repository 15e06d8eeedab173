import type { DestinationStream } from 'pino';
import type { FetchLike } from '../api/transport.js';

/**
 * What a command may touch of the outside world. main() passes the real process; tests pass
 * captured streams, their own environment and an abort signal they control.
 */
export interface CommandContext {
  env: NodeJS.ProcessEnv;
  /** Human-facing output (results). */
  stdout: (text: string) => void;
  /** Human-facing diagnostics (errors, progress). */
  stderr: (text: string) => void;
  stdin: NodeJS.ReadableStream;
  /** Whether stdout is a terminal (progress bars, colours). */
  isTty: boolean;
  /** Raw writes to stderr for a progress bar (carriage returns, no newline); absent unless stderr is a terminal. */
  progress?: ((text: string) => void) | undefined;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** JSON log lines go here; stdout when omitted. */
  logDestination?: DestinationStream;
  /**
   * Applies the loaded configuration's proxy settings to the process's HTTP stack (main()
   * installs the dispatcher); tests leave it out so msw keeps intercepting.
   */
  configureNetwork?: (proxyEnv: Readonly<Record<string, string>>) => void;
  /** For tests that need a fetch other than the (msw-patched) global one. */
  fetch?: FetchLike;
}
