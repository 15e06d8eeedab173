import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, requireIdentity } from '../../src/config/config.js';
import { ConfigError, ExitCode } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';

async function envFile(lines: string[]): Promise<string> {
  const dir = await tempDir();
  const path = join(dir, 'agent.env');
  await writeFile(path, `${lines.join('\n')}\n`, { mode: 0o600 });
  return path;
}

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe('loadConfig', () => {
  it('takes a flag over the environment over the env file', async () => {
    const path = await envFile(["BYTEOR_API_BASE_URL='https://file.example'", "BYTEOR_ORG_ID='org_file'", "BYTEOR_PROJECT_ID='prj_file'"]);
    const config = await loadConfig({
      flags: { config: path, apiBaseUrl: 'https://flag.example' },
      env: { BYTEOR_API_BASE_URL: 'https://env.example', BYTEOR_ORG_ID: 'org_env' },
    });
    expect(config.apiBaseUrl?.href).toBe('https://flag.example/');
    expect(config.orgId).toBe('org_env');
    expect(config.projectId).toBe('prj_file');
    expect(config.sources).toMatchObject({ BYTEOR_API_BASE_URL: 'flag', BYTEOR_ORG_ID: 'environment', BYTEOR_PROJECT_ID: 'env file' });
  });

  it('finds the env file through BYTEOR_ENV_FILE when --config is absent', async () => {
    const path = await envFile(["BYTEOR_AGENT_ID='agt_1'"]);
    const config = await loadConfig({ env: { BYTEOR_ENV_FILE: path } });
    expect(config.envFile).toBe(path);
    expect(config.agentId).toBe('agt_1');
  });

  it('defaults the state directory to systemd STATE_DIRECTORY, then /var/lib/byteor-agent', async () => {
    const path = await envFile([]);
    expect((await loadConfig({ flags: { config: path }, env: { STATE_DIRECTORY: '/var/lib/byteor-agent-x:/other' } })).stateDir).toBe('/var/lib/byteor-agent-x');
    expect((await loadConfig({ flags: { config: path }, env: {} })).stateDir).toBe('/var/lib/byteor-agent');
  });

  it('resolves a relative --state-dir against the working directory, but not one from a file', async () => {
    const path = await envFile([]);
    expect((await loadConfig({ flags: { config: path, stateDir: 'rel/state' }, env: {} })).stateDir).toBe(join(process.cwd(), 'rel/state'));
  });

  it('parses labels from the variable or repeated --label flags', async () => {
    const path = await envFile(["BYTEOR_AGENT_LABELS='region=eu-west-1,rack=r12'"]);
    expect((await loadConfig({ flags: { config: path }, env: {} })).labels).toEqual({ region: 'eu-west-1', rack: 'r12' });
    expect((await loadConfig({ flags: { config: path, label: ['tier=edge'] }, env: {} })).labels).toEqual({ tier: 'edge' });
  });

  it('names the variable, the file and the fix for a bad base URL, with exit code 78', async () => {
    const path = await envFile(["BYTEOR_API_BASE_URL='api.byteor.com'"]);
    const err = await configError(loadConfig({ flags: { config: path }, env: {} }));
    expect(err.exitCode).toBe(ExitCode.config);
    expect(err.exitCode).toBe(78);
    expect(err.variable).toBe('BYTEOR_API_BASE_URL');
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/Fix: .*https:\/\//);
  });

  it('refuses plain http to a non-loopback host unless insecure http is opted into', async () => {
    const env = { BYTEOR_API_BASE_URL: 'http://api.internal.example' };
    const err = await configError(loadConfig({ flags: { config: '/nonexistent/agent.env' }, env }));
    expect(err.message).toMatch(/BYTEOR_API_BASE_URL uses plain http:\/\/ .*from the process environment/);
    const ok = await loadConfig({ flags: { config: '/nonexistent/agent.env', insecureHttp: true }, env });
    expect(ok.apiBaseUrl?.protocol).toBe('http:');
    expect((await loadConfig({ flags: { config: '/nonexistent/agent.env' }, env: { BYTEOR_API_BASE_URL: 'http://127.0.0.1:8080' } })).apiBaseUrl?.port).toBe('8080');
  });

  it('refuses base URLs with credentials or a query', async () => {
    await expect(loadConfig({ env: { BYTEOR_ENV_FILE: '/nonexistent', BYTEOR_API_BASE_URL: 'https://u:p@api.byteor.com' } })).rejects.toThrow(/credentials/);
    await expect(loadConfig({ env: { BYTEOR_ENV_FILE: '/nonexistent', BYTEOR_API_BASE_URL: 'https://api.byteor.com/?x=1' } })).rejects.toThrow(/query/);
  });

  it.each([
    ['BYTEOR_AGENT_ID', 'agt/../../etc', /not a valid ID/],
    ['BYTEOR_ORG_ID', 'org 1', /not a valid ID/],
    ['BYTEOR_AGENT_LABELS', 'Region=eu', /label key "Region" is invalid/],
    ['BYTEOR_AGENT_LABELS', 'noequals', /key=value/],
    ['BYTEOR_STATE_DIR', 'relative/dir', /absolute path/],
    ['BYTEOR_LOG_LEVEL', 'verbose', /not a log level/],
    ['BYTEOR_ENVIRONMENT_POSTURE', 'production', /dev, staging or prod/],
    ['BYTEOR_ALLOW_INSECURE_HTTP', 'maybe', /not a boolean/],
  ])('rejects %s=%s with a message naming it', async (variable, value, pattern) => {
    const path = await envFile([`${variable}='${value}'`]);
    const err = await configError(loadConfig({ flags: { config: path }, env: {} }));
    expect(err.variable).toBe(variable);
    expect(err.message).toMatch(pattern);
    expect(err.message).toContain(`in ${path}`);
  });

  it('never echoes a malformed credential back', async () => {
    const path = await envFile(["BYTEOR_AGENT_API_KEY='has space-secretvalue'"]);
    const err = await configError(loadConfig({ flags: { config: path }, env: {} }));
    expect(err.message).toMatch(/BYTEOR_AGENT_API_KEY is malformed/);
    expect(err.message).not.toContain('secretvalue');
  });

  it('explains an unreadable env file', async () => {
    const dir = await tempDir();
    const err = await configError(loadConfig({ flags: { config: dir }, env: {} }));
    expect(err.message).toMatch(/cannot be read \(it is a directory\)/);
    if (process.getuid?.() !== 0) {
      const path = await envFile(["A='1'"]);
      await chmod(path, 0o000);
      await expect(loadConfig({ flags: { config: path }, env: {} })).rejects.toThrow(/permission denied/);
    }
  });

  it('says how to enroll when the runtime identity is missing', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'etc'));
    const path = join(dir, 'etc', 'agent.env');
    const config = await loadConfig({ flags: { config: path }, env: { BYTEOR_API_BASE_URL: 'https://api.byteor.com' } });
    const err = (() => {
      try {
        requireIdentity(config);
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(err.variable).toBe('BYTEOR_AGENT_ID');
    expect(err.message).toContain(`${path} does not exist`);
    expect(err.message).toMatch(/byteor-agent enroll/);
  });
});

describe('proxy variables', () => {
  it('takes them from the process environment first, then from the env file', async () => {
    const path = await envFile(["HTTPS_PROXY='http://file-proxy:3128'", "NO_PROXY='.internal'", "BYTEOR_AGENT_ID='agt_1'"]);
    const config = await loadConfig({ flags: { config: path }, env: { HTTPS_PROXY: 'http://env-proxy:3128' } });
    expect(config.proxyEnv).toEqual({ HTTPS_PROXY: 'http://env-proxy:3128', NO_PROXY: '.internal' });
  });

  it('refuses a proxy that is not an http(s) URL without echoing it', async () => {
    const path = await envFile(["HTTPS_PROXY='proxy.corp:3128:s3cret'"]);
    const err = await configError(loadConfig({ flags: { config: path }, env: {} }));
    expect(err.variable).toBe('HTTPS_PROXY');
    expect(err.message).toContain(`in ${path}`);
    expect(err.message).not.toContain('s3cret');
  });
});
