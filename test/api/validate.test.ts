import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { asDeployment, deploymentProblem } from '../../src/api/validate.js';
import { canonicalBytes } from '../../src/crypto/jcs.js';
import { validateKeySet } from '../../src/crypto/keyset.js';
import { verifyDeploymentSignature } from '../../src/crypto/verify-deployment.js';

describe('deployment parsing', () => {
  it('keeps a deployment exactly as received, so a signature over a body without approval_credential still verifies', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const x = publicKey.export({ format: 'jwk' }).x!;
    const unsigned = {
      deployment_id: 'dep_1',
      version_id: 'ver_1',
      environment_id: 'env_1',
      created_at: '2026-12-04T19:00:00Z',
      bundle: { url: '/b', sha256: 'a'.repeat(64), size_bytes: 10, format: 'tar+gzip' },
      rollout: { wave: 2 },
    };
    const wire = { ...unsigned, signature: { kid: 'k1', alg: 'EdDSA', value: sign(null, canonicalBytes(unsigned), privateKey).toString('base64url') } };
    const parsed = JSON.parse(JSON.stringify(wire)) as Record<string, unknown>;
    expect(deploymentProblem(parsed)).toBeUndefined();
    const deployment = asDeployment(parsed);
    expect('approval_credential' in deployment).toBe(false);
    expect(deployment.rollout).toEqual({ wave: 2 });
    const keys = validateKeySet({ keys: [{ kty: 'OKP', crv: 'Ed25519', kid: 'k1', x }] }, Date.now()).keys;
    expect(verifyDeploymentSignature(deployment, keys, Date.now())).toMatchObject({ ok: true });
  });

  it('names what is wrong with a malformed deployment', () => {
    expect(deploymentProblem({ deployment_id: 'dep_1' })).toBe('missing version_id');
    expect(deploymentProblem({ deployment_id: '../x', version_id: 'v', environment_id: 'e', created_at: 'c' })).toBe('deployment_id is not a path-safe ID');
  });
});
