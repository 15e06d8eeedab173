import { describe, expect, it } from 'vitest';
import { checkSpecHash, specHashOf, verifyApprovalCredential, type ApprovalExpectations } from '../../src/crypto/approval.js';
import { validateKeySet } from '../../src/crypto/keyset.js';
import { ControlPlane, decodeApprovalCredential } from '../control-plane/index.js';

const NOW = Date.parse('2026-12-04T12:00:00.000Z');
const SPEC = 'replicas=3\n';

function setup(): { cp: ControlPlane; keys: ReturnType<typeof validateKeySet>['keys']; expect: ApprovalExpectations } {
  const cp = new ControlPlane({ now: () => NOW, posture: 'prod' });
  return { cp, keys: validateKeySet(cp.jwks(), NOW).keys, expect: { environmentId: cp.defaultEnvironment.environmentId, posture: 'prod', nowMs: NOW } };
}

describe('verifyApprovalCredential', () => {
  it('accepts a credential issued for this environment, then checks the spec hash', () => {
    const { cp, keys, expect: ctx } = setup();
    const result = verifyApprovalCredential(cp.issueApprovalCredential({}, { specKv: SPEC }), keys, ctx);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.approval.environment_id).toBe(ctx.environmentId);
    expect(checkSpecHash(result.approval, specHashOf(Buffer.from(SPEC))).ok).toBe(true);
    expect(checkSpecHash(result.approval, specHashOf(Buffer.from('replicas=300\n')))).toMatchObject({ ok: false, rule: 'spec_mismatch' });
    expect(checkSpecHash(result.approval, specHashOf(undefined))).toMatchObject({ ok: false, rule: 'spec_mismatch' });
  });

  it('treats a bundle without spec.kv as an empty spec', () => {
    const { cp, keys, expect: ctx } = setup();
    const result = verifyApprovalCredential(cp.issueApprovalCredential({}, { specKv: '' }), keys, ctx);
    expect(result.ok && checkSpecHash(result.approval, specHashOf(undefined)).ok).toBe(true);
    expect(specHashOf(undefined)).toBe(specHashOf(new Uint8Array(0)));
  });

  it.each([
    ['no dot', 'abc'],
    ['three parts', 'a.b.c'],
    ['payload not base64url', 'a+b/.AAAA'],
    ['payload not JSON', `${Buffer.from('not json').toString('base64url')}.AAAA`],
    ['payload an array', `${Buffer.from('[1]').toString('base64url')}.AAAA`],
    ['payload without kid', `${Buffer.from('{"v":1}').toString('base64url')}.AAAA`],
    ['empty', ''],
  ])('refuses a credential that cannot be decoded (%s)', (_name, credential) => {
    const { keys, expect: ctx } = setup();
    expect(verifyApprovalCredential(credential, keys, ctx)).toMatchObject({ ok: false, rule: 'malformed' });
  });

  it('refuses a signature by another key, and a payload changed after signing', () => {
    const { cp, keys, expect: ctx } = setup();
    expect(verifyApprovalCredential(cp.issueApprovalCredential({}, { signWith: 'other-key' }), keys, ctx)).toMatchObject({ ok: false, rule: 'bad_signature' });
    const tampered = cp.issueApprovalCredential({}, { tamper: { capabilities: ['deploy', 'admin'] } });
    expect(decodeApprovalCredential(tampered).payload).toMatchObject({ capabilities: ['deploy', 'admin'] });
    expect(verifyApprovalCredential(tampered, keys, ctx)).toMatchObject({ ok: false, rule: 'bad_signature' });
  });

  it('verifies the bytes as received: the same JSON re-encoded differently does not verify', () => {
    const { cp, keys, expect: ctx } = setup();
    const credential = cp.issueApprovalCredential();
    const [, signature] = credential.split('.');
    const { payload } = decodeApprovalCredential(credential);
    const pretty = Buffer.from(JSON.stringify(payload, null, 2)).toString('base64url');
    expect(verifyApprovalCredential(`${pretty}.${signature}`, keys, ctx)).toMatchObject({ ok: false, rule: 'bad_signature' });
  });

  it('names an unknown kid so the caller can refresh the key set once', () => {
    const { cp, keys, expect: ctx } = setup();
    const credential = cp.issueApprovalCredential({}, { kid: 'key-not-yet-fetched' });
    expect(verifyApprovalCredential(credential, keys, ctx)).toMatchObject({ ok: false, rule: 'unknown_key', kid: 'key-not-yet-fetched' });
  });

  it('refuses an unsupported version', () => {
    const { cp, keys, expect: ctx } = setup();
    expect(verifyApprovalCredential(cp.issueApprovalCredential({ v: 2 }), keys, ctx)).toMatchObject({ ok: false, rule: 'unsupported_version' });
    expect(verifyApprovalCredential(cp.issueApprovalCredential({ v: '1' }), keys, ctx)).toMatchObject({ ok: false, rule: 'unsupported_version' });
  });

  it("refuses another environment's credential, and another posture's", () => {
    const { cp, keys, expect: ctx } = setup();
    const other = cp.createEnvironment({ posture: 'prod' });
    expect(verifyApprovalCredential(cp.issueApprovalCredential({}, { environmentId: other.environmentId }), keys, ctx)).toMatchObject({ ok: false, rule: 'environment_mismatch' });
    expect(verifyApprovalCredential(cp.issueApprovalCredential({ environment_posture: 'staging' }), keys, ctx)).toMatchObject({ ok: false, rule: 'environment_mismatch' });
  });

  it('refuses an expired credential, to the millisecond', () => {
    const { cp, keys, expect: ctx } = setup();
    const credential = cp.issueApprovalCredential({ expires_at: new Date(NOW + 1000).toISOString() });
    expect(verifyApprovalCredential(credential, keys, ctx).ok).toBe(true);
    expect(verifyApprovalCredential(credential, keys, { ...ctx, nowMs: NOW + 1000 })).toMatchObject({ ok: false, rule: 'expired' });
  });

  it('refuses a credential whose capabilities lack deploy', () => {
    const { cp, keys, expect: ctx } = setup();
    expect(verifyApprovalCredential(cp.issueApprovalCredential({ capabilities: ['read'] }), keys, ctx)).toMatchObject({ ok: false, rule: 'missing_capability' });
    expect(verifyApprovalCredential(cp.issueApprovalCredential({ capabilities: [] }), keys, ctx)).toMatchObject({ ok: false, rule: 'missing_capability' });
  });

  it('refuses a signed payload with missing or mistyped fields', () => {
    const { cp, keys, expect: ctx } = setup();
    for (const overrides of [{ environment_id: undefined }, { spec_hash: 'md5:abc' }, { capabilities: 'deploy' }, { expires_at: 'soon' }]) {
      expect(verifyApprovalCredential(cp.issueApprovalCredential(overrides), keys, ctx)).toMatchObject({ ok: false, rule: 'malformed' });
    }
  });
});
