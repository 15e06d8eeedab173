import { describe, expect, it } from 'vitest';
import { createLogger, registerSecret, scrubSecrets } from '../src/log.js';
import { LogCapture } from './support/log-capture.js';

describe('logger redaction', () => {
  it('redacts secret fields at every depth we log at', () => {
    const capture = new LogCapture();
    const logger = createLogger({ destination: capture });
    logger.info({ apiKey: 'k1-secret', req: { headers: { authorization: 'Bearer abc.def' } }, a: { b: { token: 't0ken-secret' } } }, 'hello');
    const text = capture.text();
    expect(text).not.toMatch(/k1-secret|abc\.def|t0ken-secret/);
    expect(capture.records[0]).toMatchObject({ apiKey: '[REDACTED]', req: { headers: { authorization: '[REDACTED]' } }, msg: 'hello' });
  });

  it('scrubs registered secrets and bearer tokens from messages and error stacks', () => {
    const capture = new LogCapture();
    const logger = createLogger({ destination: capture });
    registerSecret('enroll-token-0123456789');
    const err = new Error('server said: bad token enroll-token-0123456789');
    logger.error({ err }, 'failed with Bearer enroll-token-0123456789 and byk_live_abcdef0123456789');
    const text = capture.text();
    expect(text).not.toContain('enroll-token-0123456789');
    expect(text).not.toContain('byk_live_abcdef0123456789');
    expect(capture.records[0]?.err).toMatchObject({ message: 'server said: bad token [REDACTED]' });
  });

  it('scrubSecrets leaves ordinary text and a key hint alone', () => {
    expect(scrubSecrets('heartbeat ok (sequence 42)')).toBe('heartbeat ok (sequence 42)');
    expect(scrubSecrets('runtime key (byk_live_… sha256:1a2b3c4d5e6f)')).toBe('runtime key (byk_live_… sha256:1a2b3c4d5e6f)');
    expect(scrubSecrets('key byk_live_AbCdEf0123456789xyz leaked')).toBe('key byk_[REDACTED] leaked');
  });
});
