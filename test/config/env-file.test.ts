import { readdir, readFile, stat, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as dotenvParse } from 'dotenv';
import { describe, expect, it } from 'vitest';
import { ambiguousLines, EnvFileValueError, formatEnvLine, unrepresentableReason, updateEnvText, writeEnvFile } from '../../src/config/env-file.js';
import { parseSystemdEnvFile } from '../support/systemd-env.js';
import { tempDir } from '../support/tmp.js';

const TRICKY_VALUES = [
  'plain',
  'with spaces  inside and trailing ',
  '  leading spaces',
  'hash # not a comment',
  '#starts-with-hash',
  'a=b=c',
  '$HOME and ${PATH} and $(id)',
  'back\\slash \\n not a newline',
  'double "quotes" inside',
  'back`ticks`',
  'unicode: héllo wörld ✓ 日本語 🚀',
  'semi;colon',
  'https://api.byteor.com/byteor?x=1&y=2',
  'byk_live_AbC123-_.~+/=',
  '',
  'tab\there',
  '\\',
];

function bothReaders(text: string): { dotenv: Record<string, string>; systemd: Record<string, string> } {
  return { dotenv: dotenvParse(text), systemd: parseSystemdEnvFile(text) };
}

describe('env file syntax', () => {
  it('writes values that dotenv and systemd read back identically', () => {
    for (const value of TRICKY_VALUES) {
      if (unrepresentableReason(value) !== undefined) continue;
      const text = `${formatEnvLine('BYTEOR_X', value)}\n`;
      const { dotenv, systemd } = bothReaders(text);
      expect(dotenv.BYTEOR_X, `dotenv on ${JSON.stringify(value)}`).toBe(value);
      expect(systemd.BYTEOR_X, `systemd on ${JSON.stringify(value)}`).toBe(value);
    }
  });

  it('round-trips thousands of random printable and unicode values through both readers', () => {
    // A fixed-seed generator keeps the fuzz reproducible.
    let seed = 0x2f6b;
    const next = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const alphabet = [...' !"#$%&()*+,-./0123456789:;<=>?@AZaz[\\]^_`{|}~\té✓🚀'];
    let checked = 0;
    for (let i = 0; i < 3000; i += 1) {
      const length = next() % 24;
      let value = '';
      for (let j = 0; j < length; j += 1) value += alphabet[next() % alphabet.length];
      if (unrepresentableReason(value) !== undefined) {
        expect(() => formatEnvLine('K', value)).toThrow(EnvFileValueError);
        continue;
      }
      const { dotenv, systemd } = bothReaders(`${formatEnvLine('K', value)}\n`);
      expect(dotenv.K).toBe(value);
      expect(systemd.K).toBe(value);
      checked += 1;
    }
    expect(checked).toBeGreaterThan(2000);
  });

  it('refuses values that cannot be written unambiguously, naming the variable and why', () => {
    expect(() => formatEnvLine('BYTEOR_AGENT_NAME', 'two\nlines')).toThrow(/BYTEOR_AGENT_NAME .*line break/);
    expect(() => formatEnvLine('BYTEOR_AGENT_NAME', 'cr\rhere')).toThrow(/line break/);
    expect(() => formatEnvLine('BYTEOR_AGENT_NAME', 'nul\0byte')).toThrow(/NUL/);
    expect(() => formatEnvLine('BYTEOR_AGENT_NAME', "it's")).toThrow(/single quote/);
    expect(() => formatEnvLine('BYTEOR_AGENT_NAME', 'ends with \\')).toThrow(/backslash/);
    expect(() => formatEnvLine('BAD-NAME', 'x')).toThrow(/variable name/);
  });

  it('updates keys in place, appends new ones, removes deleted ones, and keeps comments and other lines', () => {
    const before = ['# written by the installer', 'BYTEOR_API_BASE_URL=https://old.example', 'OTHER="kept as is"', 'BYTEOR_ENROLLMENT_TOKEN=tok_secret', ''].join('\n');
    const after = updateEnvText(before, {
      BYTEOR_API_BASE_URL: 'https://api.byteor.com',
      BYTEOR_AGENT_ID: 'agt_1',
      BYTEOR_ENROLLMENT_TOKEN: null,
    });
    expect(after).toBe(["# written by the installer", "BYTEOR_API_BASE_URL='https://api.byteor.com'", 'OTHER="kept as is"', "BYTEOR_AGENT_ID='agt_1'", ''].join('\n'));
    expect(after).not.toContain('tok_secret');
  });

  it('drops duplicate assignments of a changed key so the file says one thing', () => {
    const after = updateEnvText("A='1'\nA='2'\n", { A: '3' });
    expect(after).toBe("A='3'\n");
  });

  it('flags hand-written lines that systemd and dotenv may read differently', () => {
    const text = ["GOOD='x'", 'export BAD=1', 'TRAILING=x # comment', '# comment', '', "ESC='ends\\'"].join('\n');
    expect(ambiguousLines(text).map((l) => l.line)).toEqual([2, 3, 6]);
  });
});

describe('writeEnvFile', () => {
  it('creates the file with mode 0600 and content both readers agree on', async () => {
    const dir = await tempDir();
    const path = join(dir, 'agent.env');
    await writeEnvFile(path, { BYTEOR_API_BASE_URL: 'https://api.byteor.com', BYTEOR_AGENT_LABELS: 'region=eu,rack=r#12' });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = await readFile(path, 'utf8');
    expect(bothReaders(text).dotenv).toEqual(bothReaders(text).systemd);
    expect(dotenvParse(text).BYTEOR_AGENT_LABELS).toBe('region=eu,rack=r#12');
  });

  it('keeps a 0640 mode chosen for the service group, and leaves no temp files', async () => {
    const dir = await tempDir();
    const path = join(dir, 'agent.env');
    await writeFile(path, "A='1'\n");
    await chmod(path, 0o640);
    await writeEnvFile(path, { B: '2' });
    expect((await stat(path)).mode & 0o777).toBe(0o640);
    expect(await readdir(dir)).toEqual(['agent.env']);
  });

  it('tightens a world-readable file to 0600 when rewriting it', async () => {
    const dir = await tempDir();
    const path = join(dir, 'agent.env');
    await writeFile(path, "A='1'\n");
    await chmod(path, 0o644);
    await writeEnvFile(path, { BYTEOR_AGENT_API_KEY: 'byk_live_secretvalue' });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('leaves the old file untouched when a value cannot be written', async () => {
    const dir = await tempDir();
    const path = join(dir, 'agent.env');
    await writeFile(path, "A='1'\n");
    await expect(writeEnvFile(path, { A: 'two\nlines' })).rejects.toThrow(EnvFileValueError);
    expect(await readFile(path, 'utf8')).toBe("A='1'\n");
    expect(await readdir(dir)).toEqual(['agent.env']);
  });
});
