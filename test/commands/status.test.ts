import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runStatus } from '../../src/commands/status.js';
import type { StatusDocument } from '../../src/state/status-file.js';
import { captureContext } from '../support/command-context.js';
import { tempDir } from '../support/tmp.js';

const iso = (msAgo: number): string => new Date(Date.now() - msAgo).toISOString();

function doc(overrides: Partial<StatusDocument> = {}): StatusDocument {
  return {
    schema: 1,
    agent_id: 'agt_01TEST',
    agent_version: '0.1.0',
    pid: 4242,
    api_base_url: 'https://api.byteor.com/',
    env_file: '/etc/byteor/agent.env',
    state_dir: '/var/lib/byteor-agent',
    started_at: iso(3_600_000),
    updated_at: iso(5_000),
    state: 'healthy',
    heartbeat: { last_success_at: iso(12_000), last_attempt_at: iso(12_000), last_error: null, sequence: 120, interval_seconds: 30, consecutive_failures: 0 },
    deployment: {
      current: { deployment_id: 'dep_01', bundle_sha256: 'ab'.repeat(32), state: 'active', activated_at: iso(60_000) },
      previous: null,
      target: null,
      failed: null,
    },
    outbox: { pending: 2, pending_bytes: 3 * 1024 * 1024, rejected: 1, rejected_entries: [{ name: 'big.tar.gz', type: 'incident_bundle', reason: 'larger than 64 MiB', rejected_at: iso(1000) }] },
    signing_keys: { kids: ['key-2026-11'], fetched_at: iso(600_000) },
    jobs: {},
    problems: [],
    ...overrides,
  };
}

async function withStatus(document: StatusDocument | undefined): Promise<{ env: NodeJS.ProcessEnv }> {
  const dir = await tempDir();
  const stateDir = join(dir, 'state');
  await mkdir(stateDir);
  if (document !== undefined) await writeFile(join(stateDir, 'status.json'), JSON.stringify(document));
  await writeFile(join(dir, 'agent.env'), `BYTEOR_AGENT_ID='agt_01TEST'\nBYTEOR_STATE_DIR='${stateDir}'\n`);
  return { env: { BYTEOR_ENV_FILE: join(dir, 'agent.env') } };
}

describe('byteor-agent status', () => {
  it('prints a healthy agent for a human and exits 0', async () => {
    const { env } = await withStatus(doc());
    const c = captureContext({ env });
    expect(await runStatus({}, c.ctx)).toBe(0);
    const text = c.stdout.join('\n');
    expect(text).toMatch(/State:\s+healthy \(pid 4242, up 60 min\)/);
    expect(text).toMatch(/Heartbeat:\s+last ok 12 s ago \(#120, every 30 s\)/);
    expect(text).toMatch(/Deployment:\s+dep_01 active, bundle abababababab…/);
    expect(text).toMatch(/Outbox:\s+2 pending \(3\.0 MiB\), 1 rejected/);
    expect(text).toMatch(/rejected big\.tar\.gz \(incident_bundle\): larger than 64 MiB/);
    expect(text).toMatch(/Problems:\s+none/);
  });

  it('lists every problem with its fix and exits 1 when degraded', async () => {
    const { env } = await withStatus(
      doc({ state: 'degraded', problems: [{ code: 'scope_missing', message: 'runtime key lacks agent:artifact_upload', fix: 'grant agent:artifact_upload to agent agt_01TEST', since: iso(1000) }] }),
    );
    const c = captureContext({ env });
    expect(await runStatus({}, c.ctx)).toBe(1);
    expect(c.stdout.join('\n')).toMatch(/- scope_missing: runtime key lacks agent:artifact_upload[^\n]*\n\s+fix: grant agent:artifact_upload/);
  });

  it('exits 1 and says so when the key is rejected', async () => {
    const { env } = await withStatus(doc({ state: 'unauthorized' }));
    const c = captureContext({ env });
    expect(await runStatus({}, c.ctx)).toBe(1);
    expect(c.stdout.join('\n')).toMatch(/State:\s+unauthorized/);
  });

  it('exits 3 when the agent never ran, saying whether it is enrolled', async () => {
    const { env } = await withStatus(undefined);
    const c = captureContext({ env });
    expect(await runStatus({}, c.ctx)).toBe(3);
    expect(c.stdout.join('\n')).toMatch(/not running: the agent has not run yet .*enrolled as agt_01TEST/);
  });

  it('exits 3 when status.json is stale (the agent died or hangs)', async () => {
    const { env } = await withStatus(doc({ updated_at: iso(10 * 60_000) }));
    const c = captureContext({ env });
    expect(await runStatus({}, c.ctx)).toBe(3);
    expect(c.stdout.join('\n')).toMatch(/not running or hung: status last updated 10 min ago by pid 4242/);
  });

  it('--json prints the document with stale and summary', async () => {
    const { env } = await withStatus(doc());
    const c = captureContext({ env });
    expect(await runStatus({ json: true }, c.ctx)).toBe(0);
    const parsed = JSON.parse(c.stdout.join('\n')) as Record<string, unknown>;
    expect(parsed).toMatchObject({ agent_id: 'agt_01TEST', state: 'healthy', stale: false, summary: 'healthy', heartbeat: { sequence: 120 } });
  });

  it('--wait returns at once when the running agent has already heartbeated', async () => {
    const { env } = await withStatus(doc());
    const c = captureContext({ env });
    expect(await runStatus({ wait: '30' }, c.ctx)).toBe(0);
  });

  it('--wait does not count a heartbeat from before the current process started', async () => {
    const { env } = await withStatus(doc({ state: 'starting', started_at: iso(2_000), heartbeat: { ...doc().heartbeat, last_success_at: iso(60_000) } }));
    const c = captureContext({ env });
    expect(await runStatus({ wait: '0' }, c.ctx)).toBe(1);
    expect(c.stderr.join('\n')).toMatch(/no successful heartbeat within 0 s: starting[\s\S]*journalctl -u byteor-agent/);
  });
});
