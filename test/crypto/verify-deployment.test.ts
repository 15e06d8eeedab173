import { describe, expect, it } from 'vitest';
import { validateKeySet } from '../../src/crypto/keyset.js';
import { canonicalJson } from '../../src/crypto/jcs.js';
import { verifyDeploymentSignature } from '../../src/crypto/verify-deployment.js';
import { buildBundleSync, ControlPlane } from '../control-plane/index.js';

const NOW = Date.parse('2026-12-04T12:00:00.000Z');

function setup(): { cp: ControlPlane; keys: ReturnType<typeof validateKeySet>['keys'] } {
  const cp = new ControlPlane({ now: () => NOW });
  return { cp, keys: validateKeySet(cp.jwks(), NOW).keys };
}

const bundle = buildBundleSync({ 'spec.kv': 'a=1\n' });

describe('JCS', () => {
  it('sorts members and normalises numbers the RFC 8785 way', () => {
    expect(canonicalJson({ b: 1, a: [1e21, 0.1, -0], c: 'é' })).toBe('{"a":[1e+21,0.1,0],"b":1,"c":"é"}');
  });
  it('refuses values JSON cannot carry', () => {
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(/cannot canonicalize/);
  });
});

describe('verifyDeploymentSignature', () => {
  it('accepts a deployment signed by a trusted key, unknown members included', () => {
    const { cp, keys } = setup();
    const deployment = cp.publishDeployment({ bundle, extra: { rollout: { wave: 2 } } });
    expect(verifyDeploymentSignature(deployment, keys, NOW)).toEqual({ ok: true, kid: cp.currentKid() });
  });

  it('refuses any change to a signed member', () => {
    const { cp, keys } = setup();
    const deployment = cp.publishDeployment({ bundle });
    for (const mutate of [
      (d: typeof deployment) => (d.bundle.sha256 = '0'.repeat(64)),
      (d: typeof deployment) => (d.bundle.url = 'https://evil.test/b.tgz'),
      (d: typeof deployment) => (d.approval_credential = 'x.y'),
      (d: typeof deployment) => (d.extra_member = true),
    ]) {
      const copy = structuredClone(deployment);
      mutate(copy);
      expect(verifyDeploymentSignature(copy, keys, NOW)).toMatchObject({ ok: false, reason: 'signature_invalid' });
    }
  });

  it('refuses garbage, wrong-length and foreign-key signatures, and other algorithms', () => {
    const { cp, keys } = setup();
    const cases = [{ value: 'not base64!' }, { value: 'AAAA' }, { value: cp.publishDeployment({ bundle: buildBundleSync({ x: 'y' }) }).signature.value }, { alg: 'RS256' }];
    for (const signatureOverride of cases) {
      const deployment = cp.publishDeployment({ bundle, signatureOverride });
      expect(verifyDeploymentSignature(deployment, keys, NOW)).toMatchObject({ ok: false, reason: 'signature_invalid' });
    }
  });

  it('names the kid when the key is not trusted, or has expired', () => {
    const { cp, keys } = setup();
    const unknown = cp.publishDeployment({ bundle, kid: 'key-from-the-future' });
    expect(verifyDeploymentSignature(unknown, keys, NOW)).toMatchObject({ ok: false, reason: 'unknown_key', kid: 'key-from-the-future' });

    const expiring = cp.addSigningKey({ kid: 'short-lived', exp: NOW / 1000 + 60 });
    const trusted = validateKeySet(cp.jwks(), NOW).keys;
    const deployment = cp.publishDeployment({ bundle, kid: expiring });
    expect(verifyDeploymentSignature(deployment, trusted, NOW)).toMatchObject({ ok: true });
    expect(verifyDeploymentSignature(deployment, trusted, NOW + 61_000)).toMatchObject({ ok: false, reason: 'unknown_key' });
  });
});
