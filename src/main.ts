import { installHttpDispatcher } from './api/dispatcher.js';
import { runCli } from './cli.js';

/** The bundle's entry point: the real process, the real network stack, and signal handling. */
function main(): void {
  installHttpDispatcher();
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (name: NodeJS.Signals): void => {
    signals += 1;
    // The first signal asks for a clean shutdown; a second one means "now".
    if (signals > 1) process.exit(name === 'SIGINT' ? 130 : 143);
    controller.abort(name);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.title = 'byteor-agent';

  runCli(process.argv, {
    env: process.env,
    stdout: (text) => process.stdout.write(`${text}\n`),
    stderr: (text) => process.stderr.write(`${text}\n`),
    stdin: process.stdin,
    isTty: process.stdout.isTTY === true,
    progress: process.stderr.isTTY === true ? (text) => process.stderr.write(text) : undefined,
    signal: controller.signal,
    configureNetwork: (proxyEnv) => installHttpDispatcher(proxyEnv),
  }).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`byteor-agent: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 70;
    },
  );
}

main();
