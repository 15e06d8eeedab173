import { describe, expect, it } from 'vitest';
import { requiredFreeBytes } from '../../src/agent/deploy/disk.js';
import { parseContentRange } from '../../src/agent/deploy/download.js';
import { FAILED_RETRY_BASE_MS, FAILED_RETRY_CAP_MS, failedRetryDelayMs, failureFix, fromArchiveError } from '../../src/agent/deploy/failure.js';
import { approvalRequired } from '../../src/agent/deploy/verify.js';
import { ArchiveError, classifyExtractionError } from '../../src/archive/errors.js';
import { FAILURE_REASONS } from '../../src/api/types.js';

describe('failed deployments back off for a long time', () => {
  it('an hour, doubling per failure of the same deployment, capped at a day, ±20 %', () => {
    expect(failedRetryDelayMs(1, 0.5)).toBe(FAILED_RETRY_BASE_MS);
    expect(failedRetryDelayMs(2, 0.5)).toBe(2 * FAILED_RETRY_BASE_MS);
    expect(failedRetryDelayMs(3, 0.5)).toBe(4 * FAILED_RETRY_BASE_MS);
    expect(failedRetryDelayMs(50, 0.5)).toBe(FAILED_RETRY_CAP_MS);
    expect(failedRetryDelayMs(1, 0)).toBe(0.8 * FAILED_RETRY_BASE_MS);
    expect(failedRetryDelayMs(1, 0.999999)).toBeCloseTo(1.2 * FAILED_RETRY_BASE_MS, -3);
  });

  it('has a fix for every failure reason of API.md', () => {
    for (const reason of FAILURE_REASONS) expect(failureFix(reason, '/var/lib/byteor-agent').length).toBeGreaterThan(20);
  });
});

describe('download decisions', () => {
  it('needs about 3× the bundle, less what is already on disk', () => {
    expect(requiredFreeBytes(100, 0)).toBe(300);
    expect(requiredFreeBytes(100, 40)).toBe(260);
    expect(requiredFreeBytes(0, 0)).toBe(0);
  });

  it('parses Content-Range', () => {
    expect(parseContentRange('bytes 100-199/200')).toEqual({ first: 100, total: 200 });
    expect(parseContentRange('bytes 0-9/*')).toEqual({ first: 0, total: undefined });
    expect(parseContentRange('bytes */200')).toBeUndefined();
    expect(parseContentRange(null)).toBeUndefined();
    expect(parseContentRange('items 1-2/3')).toBeUndefined();
  });
});

describe('approval posture', () => {
  it('staging, prod and an unknown posture require a credential; dev does not', () => {
    expect(approvalRequired('dev')).toBe(false);
    expect(approvalRequired('staging')).toBe(true);
    expect(approvalRequired('prod')).toBe(true);
    expect(approvalRequired(undefined)).toBe(true);
  });
});

describe('extraction errors', () => {
  const errno = (code: string, extra: Record<string, unknown> = {}): Error => Object.assign(new Error(`${code}: boom`), { code, syscall: 'write', ...extra });

  it('tells a full disk, a broken archive and a failing host apart', () => {
    // node-tar in strict mode reports a failed write as TAR_ENTRY_ERROR carrying the errno code.
    expect(classifyExtractionError(errno('ENOSPC', { tarCode: 'TAR_ENTRY_ERROR' })).reason).toBe('disk_full');
    expect(classifyExtractionError(errno('EDQUOT')).reason).toBe('disk_full');
    expect(classifyExtractionError(errno('EACCES', { tarCode: 'TAR_ENTRY_ERROR' })).reason).toBe('io_error');
    expect(classifyExtractionError(Object.assign(new Error('truncated'), { code: 'TAR_BAD_ARCHIVE', tarCode: 'TAR_BAD_ARCHIVE' })).reason).toBe('unsafe_archive');
    expect(classifyExtractionError(Object.assign(new Error('incorrect header check'), { code: 'Z_DATA_ERROR' })).reason).toBe('unsafe_archive');
    const refusal = new ArchiveError('archive_too_large', 'too big');
    expect(classifyExtractionError(refusal)).toBe(refusal);
  });

  it('maps to failure reasons: a failing host is activation_failed', () => {
    expect(fromArchiveError(new ArchiveError('io_error', 'x')).reason).toBe('activation_failed');
    expect(fromArchiveError(new ArchiveError('disk_full', 'x')).reason).toBe('disk_full');
    expect(fromArchiveError(new ArchiveError('unsafe_archive', 'x')).reason).toBe('unsafe_archive');
  });
});
