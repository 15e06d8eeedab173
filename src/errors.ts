/**
 * Exit codes follow sysexits(3), so systemd units and scripts can tell failures apart:
 * the unit uses RestartPreventExitStatus=78 so a bad config does not crash-loop.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 64,
  dataError: 65,
  noInput: 66,
  unavailable: 69,
  software: 70,
  tempFail: 75,
  noPermission: 77,
  config: 78,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Base class of every error the agent raises on purpose; carries the exit code the CLI uses. */
export class AgentError extends Error {
  readonly exitCode: ExitCodeValue;

  constructor(message: string, exitCode: ExitCodeValue = ExitCode.failure, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/**
 * Invalid configuration. Always names the variable, where it came from, and the fix,
 * because the sysadmin reading it has nothing else to go on.
 */
export class ConfigError extends AgentError {
  readonly variable: string;
  readonly source: string;
  readonly fix: string;

  constructor(params: { variable: string; source: string; problem: string; fix: string }) {
    super(`invalid configuration: ${params.variable} ${params.problem} (${params.source}). Fix: ${params.fix}`, ExitCode.config);
    this.variable = params.variable;
    this.source = params.source;
    this.fix = params.fix;
  }
}

/** The operation was cancelled by shutdown; never retried, never reported as a failure. */
export class AbortedError extends AgentError {
  constructor(message = 'aborted by shutdown') {
    super(message, ExitCode.failure);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
