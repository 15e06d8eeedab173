import type { RouteContext } from './context.js';
import { enroll } from './route-enroll.js';
import { artifacts } from './route-artifacts.js';
import { bundle, storageBundle } from './route-bundle.js';
import { deployment, heartbeat, signingKeys, statusReport } from './route-runtime.js';
import { errorResponse, jsonResponse } from './responses.js';
import type { RouteName } from './types.js';

/** The route table of API.md: which path and method go to which handler. */

export interface RouteDef {
  name: RouteName;
  methods: readonly string[];
  /** Path segments; ':name' captures one (URL-decoded) segment. */
  segments: readonly string[];
  /** Whether the route lives on the API origin (under the base path) or the storage origin. */
  origin: 'api' | 'storage';
  /** Multipart bodies are streamed by the handler instead of being read up front. */
  streamsBody?: boolean;
  handle: (ctx: RouteContext) => Response | Promise<Response>;
}

const split = (path: string): string[] => path.split('/').filter((part) => part !== '');

function healthz(): Response {
  return jsonResponse(200, { status: 'ok' });
}

function readyz(ctx: RouteContext): Response {
  return ctx.state.ready ? jsonResponse(200, { status: 'ready' }) : errorResponse(503, 'not_ready', 'the control plane is not ready');
}

export const ROUTE_TABLE: readonly RouteDef[] = [
  { name: 'enroll', methods: ['POST'], segments: split('/api/v1/orgs/:orgId/projects/:projectId/environments/:environmentId/agents'), origin: 'api', handle: enroll },
  { name: 'heartbeat', methods: ['POST'], segments: split('/api/v1/agents/:agentId/heartbeat'), origin: 'api', handle: heartbeat },
  { name: 'deployment', methods: ['GET'], segments: split('/api/v1/agents/:agentId/deployment'), origin: 'api', handle: deployment },
  { name: 'bundle', methods: ['GET'], segments: split('/api/v1/agents/:agentId/deployments/:deploymentId/bundle'), origin: 'api', handle: bundle },
  { name: 'bundle', methods: ['GET'], segments: split('/api/v1/environments/:environmentId/deployments/:deploymentId/bundle'), origin: 'api', handle: bundle },
  { name: 'status', methods: ['POST'], segments: split('/api/v1/agents/:agentId/deployments/:deploymentId/status'), origin: 'api', handle: statusReport },
  { name: 'signing-keys', methods: ['GET'], segments: split('/api/v1/agents/:agentId/signing-keys'), origin: 'api', handle: signingKeys },
  { name: 'artifacts', methods: ['POST'], segments: split('/api/v1/agents/:agentId/artifacts'), origin: 'api', streamsBody: true, handle: artifacts },
  { name: 'healthz', methods: ['GET', 'HEAD'], segments: ['healthz'], origin: 'api', handle: healthz },
  { name: 'readyz', methods: ['GET', 'HEAD'], segments: ['readyz'], origin: 'api', handle: readyz },
  { name: 'bundle', methods: ['GET'], segments: split('/_storage/bundles/:deploymentId/bundle.tar.gz'), origin: 'storage', handle: storageBundle },
];

export type RouteMatch =
  | { kind: 'route'; route: RouteDef; params: Record<string, string> }
  | { kind: 'method_not_allowed'; route: RouteDef; allow: string[] }
  | { kind: 'not_found' };

function matchSegments(pattern: readonly string[], path: string[]): Record<string, string> | undefined {
  if (pattern.length !== path.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, want] of pattern.entries()) {
    const got = path[i] ?? '';
    if (want.startsWith(':')) {
      let value: string;
      try {
        value = decodeURIComponent(got);
      } catch {
        return undefined;
      }
      if (value === '') return undefined;
      params[want.slice(1)] = value;
    } else if (want !== got) return undefined;
  }
  return params;
}

/** Finds the route for a path (already stripped of the base prefix) on one origin. */
export function matchRoute(origin: 'api' | 'storage', path: string, method: string): RouteMatch {
  const segments = path.split('/').filter((part, i) => !(i === 0 && part === ''));
  let wrongMethod: { route: RouteDef; allow: string[] } | undefined;
  for (const route of ROUTE_TABLE) {
    if (route.origin !== origin) continue;
    const params = matchSegments(route.segments, segments);
    if (params === undefined) continue;
    if (route.methods.includes(method)) return { kind: 'route', route, params };
    wrongMethod = { route, allow: [...(wrongMethod?.allow ?? []), ...route.methods] };
  }
  return wrongMethod === undefined ? { kind: 'not_found' } : { kind: 'method_not_allowed', ...wrongMethod };
}
