import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/tmp.js';
import { childEnv, requireBuiltAgent, runAgent, startControlPlaneProcess, type ControlPlaneProcess } from './processes.js';

/** A forward HTTP proxy on loopback that records what it relays (absolute-form requests). */
async function startRecordingProxy(): Promise<{ server: Server; url: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const target = new URL(req.url ?? '/');
    const upstream = httpRequest({ host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

let cp: ControlPlaneProcess;
let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;

beforeAll(async () => {
  requireBuiltAgent();
  cp = await startControlPlaneProcess();
  proxy = await startRecordingProxy();
});
afterAll(async () => {
  await cp?.stop();
  await new Promise((resolve) => proxy?.server.close(resolve));
});

describe('proxy variables', () => {
  it('sends every request through HTTP_PROXY, and none when NO_PROXY matches', async () => {
    const dir = await tempDir();
    const envFile = join(dir, 'agent.env');
    const { info } = cp;
    const enroll = await runAgent(
      ['enroll', '--config', envFile, '--api-base-url', info.baseUrl, '--org', info.orgId, '--project', info.projectId, '--environment', info.environmentId],
      childEnv({ BYTEOR_ENROLLMENT_TOKEN: info.enrollmentToken, HTTP_PROXY: proxy.url }),
    );
    expect(enroll.code).toBe(0);
    const once = await runAgent(['run', '--once', '--config', envFile, '--state-dir', join(dir, 'state')], childEnv({ HTTP_PROXY: proxy.url }));
    expect(once.code).toBe(0);
    const paths = proxy.seen.map((line) => new URL(line.split(' ')[1]!).pathname);
    expect(paths).toEqual(expect.arrayContaining([expect.stringMatching(/\/agents$/), expect.stringMatching(/\/heartbeat$/), expect.stringMatching(/\/deployment$/), expect.stringMatching(/\/signing-keys$/)]));

    // Proxy settings in agent.env count too: the systemd unit gives the agent no environment.
    const fromFile = proxy.seen.length;
    await appendFile(envFile, `HTTP_PROXY='${proxy.url}'\n`);
    const viaFile = await runAgent(['run', '--once', '--config', envFile, '--state-dir', join(dir, 'state')], childEnv());
    expect(viaFile.code).toBe(0);
    expect(proxy.seen.length).toBeGreaterThan(fromFile);

    const before = proxy.seen.length;
    const bypass = await runAgent(['run', '--once', '--config', envFile, '--state-dir', join(dir, 'state')], childEnv({ HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' }));
    expect(bypass.code).toBe(0);
    expect(proxy.seen.length).toBe(before);
  });
});
