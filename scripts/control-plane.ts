/**
 * The fake control plane over real HTTP on loopback, for e2e tests, the demo and manual work.
 *
 *   npx tsx scripts/control-plane.ts [--port N] [--seed-deployment DIR] [--posture dev|staging|prod] [--token-ttl SECONDS] [--downloads DIR]
 *
 * --downloads DIR serves the files in DIR (a release: byteor-agent-linux-x64, SHA256SUMS) under
 * <baseUrl>/downloads/, the BYTEOR_DOWNLOAD_BASE_URL for packaging/install.sh.
 *
 * Prints ONE JSON line to stdout (machine-readable: baseUrl, enrollmentToken, IDs, adminUrl),
 * then human-readable lines to stderr. Arrange and inspect it through the admin API
 * (`<baseUrl>/_admin/…`, see test/control-plane/admin.ts). Exits 0 on SIGTERM/SIGINT.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { bundleFromDirectory } from '../test/control-plane/bundles.js';
import { ControlPlane } from '../test/control-plane/control-plane.js';
import { Downloads } from '../test/control-plane/downloads.js';
import { startControlPlaneServer, type ControlPlaneServer } from '../test/control-plane/http-server.js';
import type { Posture } from '../test/control-plane/types.js';
import { isMain } from './lib/is-main.js';

export interface ControlPlaneCliInfo {
  baseUrl: string;
  enrollmentToken: string;
  orgId: string;
  projectId: string;
  environmentId: string;
  posture: Posture;
  adminUrl: string;
  deploymentId: string | null;
}

export interface ControlPlaneCli {
  server: ControlPlaneServer;
  info: ControlPlaneCliInfo;
  close(): Promise<void>;
}

interface Output {
  write(text: string): unknown;
}

const USAGE = 'usage: control-plane [--port N] [--seed-deployment DIR] [--posture dev|staging|prod] [--token-ttl SECONDS] [--downloads DIR]';

export class UsageError extends Error {}

/** Starts the server as the CLI does (also used in-process by tests). Throws UsageError on bad flags. */
export async function startControlPlaneCli(argv: string[], io: { stdout: Output; stderr: Output } = process): Promise<ControlPlaneCli> {
  let values: { port?: string; 'seed-deployment'?: string; posture?: string; 'token-ttl'?: string; downloads?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { port: { type: 'string' }, 'seed-deployment': { type: 'string' }, posture: { type: 'string' }, 'token-ttl': { type: 'string' }, downloads: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  }
  const port = values.port === undefined ? 0 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0-65535\n${USAGE}`);
  const posture = (values.posture ?? 'dev') as Posture;
  if (!['dev', 'staging', 'prod'].includes(posture)) throw new UsageError(`--posture must be dev, staging or prod\n${USAGE}`);
  // Longer than the API's 15-minute default: a demo or a manual session takes a while.
  const ttlSeconds = values['token-ttl'] === undefined ? 3600 : Number(values['token-ttl']);
  if (!(ttlSeconds > 0)) throw new UsageError(`--token-ttl must be a positive number of seconds\n${USAGE}`);

  const cp = new ControlPlane({ posture });
  // Pack before listening, so a bad directory fails before anything is announced.
  const seed = values['seed-deployment'] === undefined ? undefined : await bundleFromDirectory(resolve(values['seed-deployment']));
  const downloads = values.downloads === undefined ? undefined : new Downloads({ dir: resolve(values.downloads) });
  const server = await startControlPlaneServer({ port, cp, ...(downloads === undefined ? {} : { downloads }) });
  const env = cp.defaultEnvironment;
  // Environment-wide, so agents enrolled later get it too.
  const deployment = seed === undefined ? undefined : cp.publishDeployment({ environmentId: env.environmentId, bundle: seed });
  const info: ControlPlaneCliInfo = {
    baseUrl: server.baseUrl,
    enrollmentToken: cp.issueEnrollmentToken({ environmentId: env.environmentId, ttlMs: ttlSeconds * 1000 }),
    orgId: env.orgId,
    projectId: env.projectId,
    environmentId: env.environmentId,
    posture: env.posture,
    adminUrl: server.adminUrl,
    deploymentId: deployment?.deployment_id ?? null,
  };
  io.stdout.write(`${JSON.stringify(info)}\n`);
  io.stderr.write(`fake ByteOr control plane listening on ${server.baseUrl} (posture ${posture})\n`);
  io.stderr.write(`  page: ${server.baseUrl}/ (agents, deployments, artifacts; refreshed every 2 s)\n`);
  io.stderr.write(`  enroll: BYTEOR_API_BASE_URL=${server.baseUrl} BYTEOR_ORG_ID=${env.orgId} BYTEOR_PROJECT_ID=${env.projectId} BYTEOR_ENVIRONMENT_ID=${env.environmentId} BYTEOR_ENROLLMENT_TOKEN=${info.enrollmentToken}\n`);
  if (deployment !== undefined) io.stderr.write(`  seeded deployment ${deployment.deployment_id} (bundle ${deployment.bundle.sha256}, ${deployment.bundle.size_bytes} bytes)\n`);
  if (downloads !== undefined) io.stderr.write(`  downloads: ${server.baseUrl}/downloads/ serves ${downloads.dir ?? ''} (BYTEOR_DOWNLOAD_BASE_URL)\n`);
  io.stderr.write(`  admin API: ${server.adminUrl}/state, …/requests, …/heartbeats, …/artifacts (loopback only)\n`);
  return { server, info, close: () => server.close() };
}

if (isMain(import.meta.url)) {
  startControlPlaneCli(process.argv.slice(2)).then(
    (cli) => {
      const stop = (signal: string): void => {
        process.stderr.write(`${signal}: shutting down\n`);
        cli.close().then(
          () => process.exit(0),
          () => process.exit(0),
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(err instanceof UsageError ? 64 : 1);
    },
  );
}
