import { Command, CommanderError, Option } from 'commander';
import { runEnroll } from './commands/enroll.js';
import { runRun, type RunOptions } from './commands/run.js';
import { runStatus, type StatusOptions } from './commands/status.js';
import { runSnapshot } from './commands/snapshot.js';
import { runUpload, type UploadOptions } from './commands/upload.js';
import type { CommandContext } from './commands/context.js';
import type { DoctorOptions } from './commands/doctor.js';
import { AgentError, ExitCode, errorMessage } from './errors.js';
import { scrubSecrets } from './log.js';
import { AGENT_VERSION } from './version.js';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Options every command that reads agent.env shares. */
function withConfigOptions(command: Command): Command {
  return command
    .option('--config <path>', 'env file to read (default /etc/byteor/agent.env, or $BYTEOR_ENV_FILE)')
    .option('--state-dir <dir>', 'state directory (default $STATE_DIRECTORY or /var/lib/byteor-agent)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .option('--insecure-http', 'allow plain http:// to a non-loopback API (never in production)');
}

/** Maps anything thrown by a command to the process exit code (sysexits, see errors.ts). */
export function exitCodeFor(err: unknown): number {
  if (err instanceof AgentError) return err.exitCode;
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
    return ExitCode.usage;
  }
  return ExitCode.software;
}

export function createProgram(ctx: CommandContext, setExitCode: (code: number) => void): Command {
  const program = new Command('byteor-agent')
    .description('ByteOr Cloud host agent: enrolls once, then heartbeats, activates signed config bundles and uploads artifacts.')
    .version(AGENT_VERSION, '-V, --version', 'print the agent version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (text) => ctx.stdout(text.replace(/\n$/, '')),
      writeErr: (text) => ctx.stderr(text.replace(/\n$/, '')),
    })
    .exitOverride();

  withConfigOptions(
    program
      .command('enroll')
      .description(
        'enroll this host with a single-use enrollment token, read from $BYTEOR_ENROLLMENT_TOKEN (environment or env file) or --token-file, never from the command line',
      )
      .option('--api-base-url <url>', 'API origin, e.g. https://api.byteor.com ($BYTEOR_API_BASE_URL)')
      .option('--org <id>', 'organization ID ($BYTEOR_ORG_ID)')
      .option('--project <id>', 'project ID ($BYTEOR_PROJECT_ID)')
      .option('--environment <id>', 'environment ID ($BYTEOR_ENVIRONMENT_ID)')
      .option('--name <name>', 'agent name; derived from the hostname when omitted ($BYTEOR_AGENT_NAME)')
      .option('--label <key=value>', 'label, repeatable ($BYTEOR_AGENT_LABELS as k=v,k2=v2)', collect)
      .option('--token-file <path>', 'read the enrollment token from this file, or - for standard input')
      .option('--force', 're-enroll even though an identity exists (needs a new token)')
      .option('--if-needed', 'enroll only when no identity exists, silently otherwise (for ExecStartPre)'),
  ).action(async (options: Parameters<typeof runEnroll>[0]) => {
    setExitCode(await runEnroll(options, ctx));
  });

  withConfigOptions(
    program
      .command('run')
      .description('run the agent: heartbeats, deployments, signing keys and uploads, until SIGTERM (systemd runs this)')
      .option('--once', 'run each job once, print how each went, and exit (non-zero if any failed)')
      .addOption(new Option('--dev-heartbeat-interval <seconds>', 'override the heartbeat interval (development only)').hideHelp())
      .addOption(new Option('--dev-deployment-interval <seconds>', 'override the deployment fetch interval (development only)').hideHelp())
      .addOption(new Option('--dev-outbox-interval <seconds>', 'override the outbox scan interval (development only)').hideHelp()),
  ).action(async (options: RunOptions) => {
    setExitCode(await runRun(options, ctx));
  });

  withConfigOptions(
    program
      .command('status')
      .description('show what the running agent reports about itself; exit 0 healthy, 1 unhealthy, 3 not running')
      .option('--json', 'print status.json (plus stale and summary) as JSON')
      .option('--wait <seconds>', 'wait up to this long for the running agent to complete a heartbeat'),
  ).action(async (options: StatusOptions) => {
    setExitCode(await runStatus(options, ctx));
  });

  withConfigOptions(
    program
      .command('upload')
      .description(
        'queue a file or directory for upload: it is copied into the outbox (directories are packed into a .tar.gz when sent) and the running agent uploads it; with --now it is uploaded here and now',
      )
      .argument('<path>', 'file (at most 64 MiB) or directory to upload')
      .requiredOption('--type <type>', 'artifact type: incident_bundle, snapshot or diagnostic')
      .option('--now', 'upload in the foreground and exit with the result (0 uploaded or already there; 75 queued after a temporary failure)')
      .option('--move', 'move the file or directory into the outbox instead of copying it (a copy across filesystems)'),
  ).action(async (path: string, options: UploadOptions) => {
    setExitCode(await runUpload(path, options, ctx));
  });

  withConfigOptions(
    program.command('snapshot').description("queue a snapshot artifact of the agent's own state (host facts, active deployment, recent problems) for upload"),
  ).action(async (options: Parameters<typeof runSnapshot>[0]) => {
    setExitCode(await runSnapshot(options, ctx));
  });

  withConfigOptions(
    program
      .command('doctor')
      .description('check everything the agent depends on (env file, configuration, DNS, TLS, proxy, control plane, key and scopes, clock, state directory, outbox, systemd unit), read-only; exit 1 if any check fails')
      .option('--json', 'print the checks as a JSON array'),
  ).action(async (options: DoctorOptions) => {
    // Loaded on demand: `run` never needs the doctor's modules in memory.
    const { runDoctor } = await import('./commands/doctor.js');
    setExitCode(await runDoctor(options, ctx));
  });

  return program;
}

/** Parses argv (as process.argv: node, script, ...args), runs one command, returns the exit code. */
export async function runCli(argv: readonly string[], ctx: CommandContext): Promise<number> {
  let exitCode: number = ExitCode.ok;
  const program = createProgram(ctx, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync([...argv]);
    return exitCode;
  } catch (err) {
    const code = exitCodeFor(err);
    // Commander has already printed its own usage errors.
    if (!(err instanceof CommanderError)) {
      ctx.stderr(`byteor-agent: ${scrubSecrets(errorMessage(err))}`);
      if (code === ExitCode.software && err instanceof Error && err.stack !== undefined) ctx.stderr(scrubSecrets(err.stack));
    }
    return code;
  }
}
