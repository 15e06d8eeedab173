import { readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { Posture } from '../../src/api/types.js';
import { buildBundleSync } from '../control-plane/bundles.js';
import { setupControlPlane } from '../control-plane/vitest.js';
import { VirtualClock } from '../support/virtual-clock.js';
import { deployAgent, reportsFor } from './fixture.js';

const clock = new VirtualClock();
const { cp, baseUrl } = setupControlPlane({ now: () => clock.now() });

const SPEC_A = 'replicas=3\n';
const bundleA = buildBundleSync({ 'spec.kv': SPEC_A, 'conf/app.conf': 'a\n' });
const bundleB = buildBundleSync({ 'spec.kv': 'replicas=5\n', 'conf/app.conf': 'b\n' });

/** An agent in a fresh environment of `posture`, knowing its posture (or not, for undefined). */
async function agentIn(posture: Posture, options: { agentPosture?: Posture | undefined } = {}) {
  const env = cp.createEnvironment({ posture });
  const identity = cp.createAgent({ environmentId: env.environmentId });
  const agent = await deployAgent({ cp, baseUrl, clock, agent: identity, posture: 'agentPosture' in options ? options.agentPosture : posture });
  return { env, agent };
}

describe('staging and prod require a valid approval credential', () => {
  it.each(['staging', 'prod'] as const)('%s: a deployment with a valid credential goes active', async (posture) => {
    const { agent } = await agentIn(posture);
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    expect(deployment.approval_credential).toMatch(/^[\w-]+\.[\w-]+$/);
    await agent.fetch();
    expect(await agent.current()).toBe(deployment.bundle.sha256);
  });

  it.each(['staging', 'prod'] as const)('%s: a deployment without one fails approval_invalid before any download', async (posture) => {
    const { agent } = await agentIn(posture);
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, approvalCredential: null });
    await agent.fetch();
    await agent.flush();
    expect(reportsFor(cp, deployment)).toEqual([['failed', 'approval_invalid']]);
    expect(cp.statusReports.at(-1)?.body.message).toMatch(new RegExp(`a deployment to a ${posture} environment must carry an approval credential`));
    expect(cp.requestsTo('bundle')).toHaveLength(0);
    expect(await agent.current()).toBeUndefined();
  });

  it('an agent that does not know its posture fails closed: it requires one too', async () => {
    const { agent } = await agentIn('dev', { agentPosture: undefined });
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    expect(agent.state().deployment.failed).toMatchObject({ deployment_id: deployment.deployment_id, reason: 'approval_invalid', message: expect.stringContaining('BYTEOR_ENVIRONMENT_POSTURE is not set') });
  });

  it('an expired credential, or one for another environment, is refused', async () => {
    const { env, agent } = await agentIn('prod');
    const expired = cp.issueApprovalCredential({ expires_at: new Date(clock.now() - 1).toISOString() }, { environmentId: env.environmentId, specKv: SPEC_A });
    const d1 = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, approvalCredential: expired });
    await agent.fetch();
    expect(agent.state().deployment.failed).toMatchObject({ deployment_id: d1.deployment_id, reason: 'approval_invalid', message: expect.stringContaining('(expired)') });

    const other = cp.createEnvironment({ posture: 'prod' });
    const foreign = cp.issueApprovalCredential({}, { environmentId: other.environmentId, specKv: SPEC_A });
    const d2 = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, approvalCredential: foreign });
    await agent.fetch();
    expect(agent.state().deployment.failed).toMatchObject({ deployment_id: d2.deployment_id, reason: 'approval_invalid', message: expect.stringContaining('(environment_mismatch)') });
    expect(cp.requestsTo('bundle')).toHaveLength(0);
  });

  it("a credential for another spec is refused after extraction, and the bundle is not kept", async () => {
    const { env, agent } = await agentIn('prod');
    const good = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    const wrongSpec = cp.issueApprovalCredential({}, { environmentId: env.environmentId, specKv: SPEC_A });
    const bad = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleB, approvalCredential: wrongSpec });
    await agent.fetch();
    await agent.flush();
    expect(reportsFor(cp, bad)).toEqual([
      ['downloading', null],
      ['verifying', null],
      ['failed', 'approval_invalid'],
    ]);
    expect(cp.statusReports.at(-1)?.body.message).toMatch(/spec_mismatch/);
    expect(await agent.current()).toBe(good.bundle.sha256);
    expect(await readdir(agent.layout.bundlesDir)).toEqual([good.bundle.sha256]);
    expect(await readdir(agent.layout.downloadsDir)).toEqual([]);
  });

  it('a rollback to a cached bundle is checked against its credential too', async () => {
    const { env, agent } = await agentIn('prod');
    cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    await agent.fetch();
    const b = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleB });
    await agent.fetch();
    // A rollback to A carrying B's approval.
    const mismatched = cp.issueApprovalCredential({}, { environmentId: env.environmentId, specKv: 'replicas=5\n' });
    const back = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, approvalCredential: mismatched });
    await agent.fetch();
    await agent.flush();
    expect(reportsFor(cp, back)).toEqual([['failed', 'approval_invalid']]);
    expect(await agent.current()).toBe(b.bundle.sha256);
  });

  it('a credential signed by a key the agent has not fetched yet is verified after one refresh', async () => {
    const { env, agent } = await agentIn('prod');
    await agent.refreshKeys();
    await clock.advance(5 * 60_000);
    const newKid = cp.addSigningKey({ kid: 'approvals-2027' });
    const credential = cp.issueApprovalCredential({}, { environmentId: env.environmentId, specKv: SPEC_A, kid: newKid });
    // The deployment itself is signed by the older key, which the agent has.
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, approvalCredential: credential, kid: agent.keys.kids()[0] });
    await agent.fetch();
    expect(await agent.current()).toBe(deployment.bundle.sha256);
    expect(cp.requestsTo('signing-keys')).toHaveLength(2);
  });
});

describe('dev verifies a credential only when present', () => {
  it('goes active without one', async () => {
    const { agent } = await agentIn('dev');
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA });
    expect(deployment.approval_credential).toBeNull();
    await agent.fetch();
    expect(await agent.current()).toBe(deployment.bundle.sha256);
  });

  it('refuses a present but tampered one', async () => {
    const { env, agent } = await agentIn('dev');
    const tampered = cp.issueApprovalCredential({}, { environmentId: env.environmentId, specKv: SPEC_A, tamper: true });
    const deployment = cp.publishDeployment({ agentId: agent.agentId, bundle: bundleA, approvalCredential: tampered });
    await agent.fetch();
    expect(agent.state().deployment.failed).toMatchObject({ deployment_id: deployment.deployment_id, reason: 'approval_invalid', message: expect.stringContaining('bad_signature') });
  });
});
