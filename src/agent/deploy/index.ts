import type { RuntimeContext } from '../runtime.js';
import { BundleDeploymentHandler, type DeployDeps, type DeployOptions } from './handler.js';
import { REPORTS_JOB } from './reports.js';

export { BundleDeploymentHandler, DEPLOYMENT_FAILED_PROBLEM, type DeployDeps, type DeployOptions, type DeployStep } from './handler.js';
export { DeploymentReportsJob, REPORTS_JOB } from './reports.js';

/** The pipeline's dependencies, taken from the runtime. */
export function bundleDeployDeps(ctx: RuntimeContext): DeployDeps {
  return {
    client: ctx.client,
    store: ctx.store,
    keys: ctx.keys,
    refreshKeys: (kid, signal) => ctx.signingKeys.refreshForUnknownKid(kid, signal),
    health: ctx.health,
    layout: ctx.layout,
    logger: ctx.logger,
    now: () => ctx.clock.now(),
    random: ctx.random,
    identity: { environmentId: ctx.identity.environmentId, posture: ctx.identity.environmentPosture },
    triggerReports: () => ctx.trigger(REPORTS_JOB),
  };
}

export function createBundleDeploymentHandler(ctx: RuntimeContext, options: DeployOptions = {}): BundleDeploymentHandler {
  return new BundleDeploymentHandler(bundleDeployDeps(ctx), options);
}
