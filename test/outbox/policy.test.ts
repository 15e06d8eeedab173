import { describe, expect, it } from 'vitest';
import { ForbiddenError, PermanentError, RateLimitedError, TransientError, UnauthorizedError, type RequestFacts } from '../../src/api/errors.js';
import { MAX_ARTIFACT_BYTES } from '../../src/api/types.js';
import { PackError } from '../../src/archive/pack.js';
import { compareEntries, type OutboxEntry } from '../../src/agent/outbox/entries.js';
import { checkEntry, checkSize, deferDelayMs, localProblemOf, onUploadFailure, packRejection } from '../../src/agent/outbox/policy.js';

const facts = (status: number, code?: string): RequestFacts => ({ method: 'POST', path: '/api/v1/agents/a/artifacts', status, code, serverMessage: code === undefined ? undefined : `server says ${code}`, requestId: 'req_1' });
const permanent = (status: number, code?: string): PermanentError => new PermanentError(facts(status, code));
const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

describe('checkEntry (before any byte is sent)', () => {
  it('lets known types through up to exactly 64 MiB', () => {
    expect(checkEntry({ type: 'incident_bundle', kind: 'file', size: MAX_ARTIFACT_BYTES })).toBeUndefined();
    expect(checkEntry({ type: 'snapshot', kind: 'dir', size: 0 })).toBeUndefined();
  });

  it('refuses a file one byte over 64 MiB, saying how large it is and that it was not sent', () => {
    const refused = checkEntry({ type: 'diagnostic', kind: 'file', size: MAX_ARTIFACT_BYTES + 1 });
    expect(refused?.code).toBe('too_large');
    expect(refused?.reason).toBe("the file is 64 MiB (67108865 bytes), over the 64 MiB artifact limit; not sent");
  });

  it('refuses unknown type directories and entries outside a type directory, naming the types', () => {
    expect(checkEntry({ type: 'incidents', kind: 'file', size: 1 })).toMatchObject({ code: 'unknown_type', reason: expect.stringContaining('outbox/incidents/') });
    expect(checkEntry({ type: '', kind: 'file', size: 1 })?.reason).toMatch(/directly in outbox\/.*incident_bundle, snapshot, diagnostic/);
  });

  it('refuses symbolic links and special files', () => {
    expect(checkEntry({ type: 'diagnostic', kind: 'other', size: 0 })?.code).toBe('unsupported_entry');
  });

  it('checks the packed size of a directory too', () => {
    expect(checkSize(MAX_ARTIFACT_BYTES, true)).toBeUndefined();
    expect(checkSize(MAX_ARTIFACT_BYTES + 1, true)?.reason).toContain('the packed directory');
  });
});

describe('onUploadFailure', () => {
  it('re-hashes once on a hash or size mismatch, then rejects', () => {
    expect(onUploadFailure(permanent(400, 'hash_mismatch'), false)).toEqual({ kind: 'rehash' });
    expect(onUploadFailure(permanent(400, 'size_mismatch'), false)).toEqual({ kind: 'rehash' });
    const after = onUploadFailure(permanent(400, 'hash_mismatch'), true);
    expect(after).toMatchObject({ kind: 'reject', rejection: { code: 'hash_mismatch', status: 400, serverCode: 'hash_mismatch', requestId: 'req_1' } });
  });

  it('rejects 413 and other 400s (unknown type, bad metadata) with the server message', () => {
    expect(onUploadFailure(permanent(413, 'payload_too_large'), false)).toMatchObject({ kind: 'reject', rejection: { code: 'too_large', reason: expect.stringContaining('server says payload_too_large') } });
    expect(onUploadFailure(permanent(400, 'unknown_type'), false)).toMatchObject({ kind: 'reject', rejection: { code: 'unknown_type' } });
    expect(onUploadFailure(permanent(400, 'invalid_metadata'), false)).toMatchObject({ kind: 'reject', rejection: { code: 'refused' } });
    expect(onUploadFailure(permanent(400), false)).toMatchObject({ kind: 'reject', rejection: { code: 'refused' } });
  });

  it('keeps the artifact when the request, not the artifact, is refused (404, 405, 415)', () => {
    for (const status of [404, 405, 409, 415]) expect(onUploadFailure(permanent(status), false)).toEqual({ kind: 'hold', refused: true });
  });

  it('holds (the scheduler backs off) on 429, 401, 403, transient and unknown errors', () => {
    for (const err of [
      new RateLimitedError(facts(429), 30_000),
      new UnauthorizedError(facts(401)),
      new ForbiddenError(facts(403), 'agent:artifact_upload'),
      new TransientError(facts(503), 'server', 'server error'),
      new Error('boom'),
    ]) {
      expect(onUploadFailure(err, false)).toEqual({ kind: 'hold', refused: false });
    }
  });
});

describe('local failures', () => {
  it('classifies disk full, unreadable, changing and other I/O errors', () => {
    expect(localProblemOf(errno('ENOSPC'))).toBe('disk_full');
    expect(localProblemOf(errno('EDQUOT'))).toBe('disk_full');
    expect(localProblemOf(errno('EACCES'))).toBe('unreadable');
    expect(localProblemOf(new PackError('changed', 'x changed'))).toBe('changing');
    expect(localProblemOf(errno('EIO'))).toBe('io_error');
  });

  it('turns unfit directories into rejections, but not a directory that changed meanwhile', () => {
    expect(packRejection(new PackError('too_large', 'x'))?.code).toBe('too_large');
    expect(packRejection(new PackError('unsupported_entry', 'a.sock is a socket'))).toMatchObject({ code: 'unsupported_entry', reason: expect.stringContaining('a.sock') });
    expect(packRejection(new PackError('changed', 'x'))).toBeUndefined();
    expect(packRejection(errno('ENOSPC'))).toBeUndefined();
  });

  it('waits 10 s, doubling to at most 5 minutes', () => {
    expect([1, 2, 3, 4, 5, 6, 50].map(deferDelayMs)).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
  });
});

describe('compareEntries', () => {
  const entry = (name: string, mtimeMs: number, type = 'incident_bundle'): OutboxEntry => ({ type, name, path: name, kind: 'file', size: 1, mtimeMs, ino: 1, ctimeMs: 0 });

  it('orders oldest first, then by name', () => {
    const sorted = [entry('b', 2), entry('c', 1), entry('a', 2), entry('a', 2, 'diagnostic')].sort(compareEntries);
    expect(sorted.map((e) => `${e.type}/${e.name}@${e.mtimeMs}`)).toEqual(['incident_bundle/c@1', 'diagnostic/a@2', 'incident_bundle/a@2', 'incident_bundle/b@2']);
  });
});
