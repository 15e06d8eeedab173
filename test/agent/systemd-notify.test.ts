import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SystemdNotifier } from '../../src/agent/systemd-notify.js';
import { createLogger } from '../../src/log.js';
import { LogCapture } from '../support/log-capture.js';
import { tempDir } from '../support/tmp.js';

/** A stand-in for systemd-notify that appends its argv, one call per line. */
async function fakeNotify(): Promise<{ command: string; calls: () => Promise<string[]> }> {
  const dir = await tempDir();
  const log = join(dir, 'calls');
  const command = join(dir, 'systemd-notify');
  await writeFile(command, `#!/bin/sh\necho "$*" >> '${log}'\n`);
  await chmod(command, 0o755);
  return { command, calls: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '') };
}

describe('systemd notify', () => {
  it('tells systemd READY, STATUS and STOPPING when NOTIFY_SOCKET is set', async () => {
    const fake = await fakeNotify();
    const notifier = new SystemdNotifier({ NOTIFY_SOCKET: '/run/systemd/notify' }, createLogger({ destination: new LogCapture() }), fake.command);
    await notifier.ready('running');
    await notifier.status('healthy; heartbeat #3\nsecond line');
    await notifier.stopping();
    expect(await fake.calls()).toEqual(['READY=1 STATUS=running', 'READY=1 STATUS=healthy; heartbeat #3 second line', 'STOPPING=1 STATUS=stopping']);
  });

  it('stays silent outside systemd', async () => {
    const fake = await fakeNotify();
    const notifier = new SystemdNotifier({}, createLogger({ destination: new LogCapture() }), fake.command);
    await notifier.ready('running');
    expect(notifier.active).toBe(false);
    expect(await fake.calls()).toEqual([]);
  });

  it('warns once, and keeps running, when systemd-notify is missing', async () => {
    const logs = new LogCapture();
    const notifier = new SystemdNotifier({ NOTIFY_SOCKET: '/run/systemd/notify' }, createLogger({ destination: logs }), '/nonexistent/systemd-notify');
    await notifier.ready('running');
    await notifier.status('healthy');
    expect(logs.records.filter((r) => r.level === 'warn')).toHaveLength(1);
  });
});
