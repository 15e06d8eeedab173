import { chmod, chown, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findServiceAccount, gatherEnvFileFacts, judgeEnvFile, judgeEnvFileMode, judgeEnvFileOwner, judgeEnvFileSyntax } from '../../../src/commands/doctor/env-file.js';
import type { CheckResult } from '../../../src/commands/doctor/check.js';
import { tempDir } from '../../support/tmp.js';

const GOOD = "BYTEOR_API_BASE_URL='https://api.byteor.test'\nBYTEOR_AGENT_ID='agt_01'\nBYTEOR_AGENT_API_KEY='byk_live_secretsecret'\n";

const byName = (results: CheckResult[], name: string): CheckResult => {
  const found = results.find((r) => r.name === name);
  if (found === undefined) throw new Error(`no check named ${name} in ${results.map((r) => r.name).join(', ')}`);
  return found;
};

async function envFile(text: string, mode: number): Promise<string> {
  const path = join(await tempDir(), 'agent.env');
  await writeFile(path, text);
  await chmod(path, mode);
  return path;
}

const context = { euid: 0, serviceAccount: undefined, identityElsewhere: false };

describe('doctor: env file', () => {
  it('passes a root-owned 0600 file in the one safe syntax', async () => {
    const path = await envFile(GOOD, 0o600);
    const results = judgeEnvFile(await gatherEnvFileFacts(path, { ...context, euid: process.geteuid?.() }));
    expect(results.map((r) => [r.name, r.status])).toEqual([
      ['env file', 'pass'],
      ['env file owner', 'pass'],
      ['env file mode', 'pass'],
      ['env file syntax', 'pass'],
      ['env file quoting', 'pass'],
    ]);
  });

  it('fails a missing file, naming how to create it', async () => {
    const path = join(await tempDir(), 'agent.env');
    const [result] = judgeEnvFile(await gatherEnvFileFacts(path, context));
    expect(result).toMatchObject({ name: 'env file', status: 'fail' });
    expect(result?.detail).toContain(`${path} does not exist`);
    expect(result?.fix).toMatch(/enroll/);
  });

  it('accepts a missing file when the whole identity comes from the environment', async () => {
    const path = join(await tempDir(), 'agent.env');
    const [result] = judgeEnvFile(await gatherEnvFileFacts(path, { ...context, identityElsewhere: true }));
    expect(result?.status).toBe('pass');
  });

  it('fails a world-readable file: the key is readable by every user', async () => {
    const path = await envFile(GOOD, 0o644);
    const mode = byName(judgeEnvFile(await gatherEnvFileFacts(path, context)), 'env file mode');
    expect(mode.status).toBe('fail');
    expect(mode.detail).toMatch(/0644: world-readable/);
    expect(mode.fix).toMatch(/chmod 0640/);
  });

  it('judges modes: 0600 and 0640 pass, group-writable warns, any access for others fails', () => {
    expect(judgeEnvFileMode(0o100600, '/f').status).toBe('pass');
    expect(judgeEnvFileMode(0o100640, '/f').status).toBe('pass');
    expect(judgeEnvFileMode(0o100660, '/f').status).toBe('warn');
    expect(judgeEnvFileMode(0o100400, '/f').status).toBe('warn');
    expect(judgeEnvFileMode(0o100602, '/f')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/world-writable/) as unknown });
    expect(judgeEnvFileMode(0o100604, '/f').status).toBe('fail');
  });

  it('warns when we are root and the file is not root-owned, and explains why', async () => {
    const path = await envFile(GOOD, 0o600);
    // As root the file is handed to nobody; as anyone else it already is not root's.
    if (process.geteuid?.() === 0) await chown(path, 65534, 65534);
    const owner = byName(judgeEnvFile(await gatherEnvFileFacts(path, { ...context, euid: 0 })), 'env file owner');
    expect(owner.status).toBe('warn');
    expect(owner.detail).toMatch(/not root: that account can rewrite the API URL and key/);
    expect(owner.fix).toBe(`chown root:byteor-agent ${path}`);
  });

  it('does not warn about the owner when we are not root (a development setup)', () => {
    expect(judgeEnvFileOwner(1000, 1000, '/f')).toMatchObject({ status: 'pass', detail: expect.stringMatching(/development/) as unknown });
    expect(judgeEnvFileOwner(0, 1000, '/f').status).toBe('pass');
  });

  it('fails when the service account cannot read the file, passes through its group', async () => {
    const account = { name: 'byteor-agent', uid: 4242, gid: 4242 };
    const path = await envFile(GOOD, 0o600);
    const facts = await gatherEnvFileFacts(path, { ...context, serviceAccount: account });
    expect(byName(judgeEnvFile(facts), 'env file access')).toMatchObject({ status: 'fail', fix: `chgrp byteor-agent ${path} && chmod 0640 ${path}` });
    const readable = { ...facts, stat: { uid: 0, gid: 4242, mode: 0o100640, isFile: true } };
    expect(byName(judgeEnvFile(readable), 'env file access').status).toBe('pass');
  });

  it('warns about lines neither parser reads and lines systemd and dotenv read differently, never echoing values', async () => {
    const text = `${GOOD}# a comment\n\nnot an assignment\nexport BYTEOR_LOG_LEVEL=debug\nBYTEOR_AGENT_NAME="web # 1"\n`;
    const path = await envFile(text, 0o600);
    const results = judgeEnvFile(await gatherEnvFileFacts(path, context));
    expect(byName(results, 'env file syntax')).toMatchObject({ status: 'warn', detail: 'line 6: not KEY=value, so it is ignored' });
    const quoting = byName(results, 'env file quoting');
    expect(quoting.status).toBe('warn');
    expect(quoting.detail).toContain('line 7 (BYTEOR_LOG_LEVEL), line 8 (BYTEOR_AGENT_NAME)');
    expect(JSON.stringify(results)).not.toContain('web # 1');
    expect(JSON.stringify(results)).not.toContain('secretsecret');
  });

  it('fails a file with NUL bytes', () => {
    expect(judgeEnvFileSyntax("A='1'\0\n", '/f')[0]?.status).toBe('fail');
  });

  it('fails a path that is a directory', async () => {
    const dir = await tempDir();
    const [result] = judgeEnvFile(await gatherEnvFileFacts(dir, context));
    expect(result).toMatchObject({ status: 'fail', detail: `${dir} is not a regular file` });
  });

  it('finds the service account in a passwd file', async () => {
    const passwd = join(await tempDir(), 'passwd');
    await writeFile(passwd, 'root:x:0:0:root:/root:/bin/bash\nbyteor-agent:x:998:997::/nonexistent:/usr/sbin/nologin\n');
    expect(await findServiceAccount(passwd)).toEqual({ name: 'byteor-agent', uid: 998, gid: 997 });
    expect(await findServiceAccount(join(passwd, 'missing'))).toBeUndefined();
  });
});
