import { http, type HttpHandler } from 'msw';
import type { RouteContext } from './context.js';
import type { ControlPlane } from './control-plane.js';
import { abortableDelay } from './faults.js';
import { newRequestId } from './ids.js';
import { MAX_JSON_REQUEST_BYTES, discardBody, errorResponse, faultResponse, readRequestBody, type BodyRead } from './responses.js';
import { matchRoute, type RouteMatch } from './routes.js';
import type { RequestRecord } from './types.js';

export interface HandlerOptions {
  /** The API base URL the agent is configured with; a path prefix is honoured. */
  baseUrl: string;
  /** Origin of pre-signed bundle URLs (default: the control plane's, https://storage.byteor.test). */
  storageOrigin?: string;
}

interface Site {
  apiOrigin: string;
  prefix: string;
}

function headersRecord(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    out[name.toLowerCase()] = value;
  });
  return out;
}

/** Where on our origins a URL points: an API path under the prefix, a storage path, or neither. */
function locate(cp: ControlPlane, site: Site, url: URL, method: string): RouteMatch {
  if (url.origin === new URL(cp.storageOrigin).origin && url.pathname.startsWith('/_storage/')) return matchRoute('storage', url.pathname, method);
  if (url.origin !== site.apiOrigin) return { kind: 'not_found' };
  if (site.prefix !== '' && url.pathname !== site.prefix && !url.pathname.startsWith(`${site.prefix}/`)) return { kind: 'not_found' };
  return matchRoute('api', url.pathname.slice(site.prefix.length), method);
}

function parseJson(body: BodyRead): unknown {
  if (body.kind !== 'ok' || body.bytes.length === 0) return undefined;
  try {
    return JSON.parse(body.bytes.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

async function answer(cp: ControlPlane, match: RouteMatch, ctx: RouteContext): Promise<Response> {
  const { state, request, record } = ctx;
  // An outage looks like a dead host: nothing is read, nothing is answered.
  if (state.faults.outage) return Response.error();

  const streams = match.kind === 'route' && match.route.streamsBody === true;
  if (!streams && request.method !== 'GET' && request.method !== 'HEAD') {
    ctx.body = await readRequestBody(request, MAX_JSON_REQUEST_BYTES);
    record.bodyBytes = ctx.body.kind === 'ok' ? ctx.body.bytes.length : ctx.body.kind === 'too_large' ? ctx.body.read : 0;
    ctx.json = parseJson(ctx.body);
    record.json = ctx.json;
  }

  ctx.fault = match.kind === 'route' ? state.faults.take(match.route.name) : undefined;
  const fault = ctx.fault;
  if (fault?.delayMs !== undefined && fault.delayMs > 0) {
    // A client that gives up while we wait gets nothing more (and no timer is left behind).
    if (!(await abortableDelay(fault.delayMs, request.signal))) return Response.error();
  }
  if (fault?.drop === true) return Response.error();
  if (fault?.status !== undefined) {
    if (streams) discardBody(request.body);
    const headers = { ...fault.headers, ...(fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter }) };
    return faultResponse(fault.status, fault.body, headers);
  }

  if (match.kind === 'not_found') return errorResponse(404, 'not_found', `no route for ${request.method} ${ctx.url.pathname}`);
  if (match.kind === 'method_not_allowed') {
    return errorResponse(405, 'method_not_allowed', `${request.method} is not allowed on ${ctx.url.pathname}`, { headers: { allow: match.allow.join(', ') } });
  }
  if (ctx.body.kind === 'too_large') return errorResponse(413, 'payload_too_large', `API request bodies are capped at ${MAX_JSON_REQUEST_BYTES} bytes`);
  if (match.route.name === 'enroll' || match.route.name === 'heartbeat' || match.route.name === 'status') {
    const type = request.headers.get('content-type') ?? '';
    if (ctx.body.kind === 'ok' && !/^application\/json\s*(;|$)/i.test(type)) {
      return errorResponse(415, 'unsupported_media_type', 'the body must be sent as application/json');
    }
  }
  return match.route.handle(ctx);
}

/**
 * Answers one request: records it, applies outage and faults, routes it, and stamps the common
 * headers. Shared by the msw handlers and the real HTTP server.
 */
export async function dispatch(cp: ControlPlane, site: Site, request: Request): Promise<Response> {
  const state = cp.state;
  const now = cp.now();
  const url = new URL(request.url);
  const match = locate(cp, site, url, request.method);
  const record: RequestRecord = {
    id: newRequestId(),
    route: match.kind === 'route' ? match.route.name : match.kind === 'method_not_allowed' ? match.route.name : 'unknown',
    method: request.method,
    url: request.url,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: headersRecord(request.headers),
    json: undefined,
    bodyBytes: 0,
    at: now,
    status: -1,
  };
  state.requests.push(record);
  const ctx: RouteContext = {
    cp,
    state,
    request,
    url,
    params: match.kind === 'route' ? match.params : {},
    record,
    fault: undefined,
    body: { kind: 'none' },
    json: undefined,
    now,
  };

  let response: Response;
  try {
    response = await answer(cp, match, ctx);
  } catch (err) {
    if (request.signal.aborted) {
      response = Response.error();
    } else {
      // A bug in the fake (or a client body stream that broke) must be visible, not a hang.
      const message = err instanceof Error ? err.message : String(err);
      response = errorResponse(500, 'internal_error', `the fake control plane failed: ${message}`);
    }
  }
  record.status = response.type === 'error' ? 0 : response.status;
  if (request.method === 'HEAD' && response.body !== null) {
    discardBody(response.body);
    response = new Response(null, { status: response.status, headers: response.headers });
  }
  if (response.type !== 'error') {
    response.headers.set('x-request-id', record.id);
    response.headers.set('date', new Date(cp.now()).toUTCString());
  }
  return response;
}

/**
 * The msw handlers serving `cp` at `baseUrl` (and bundle downloads at the storage origin).
 * Unknown paths on these origins answer 404 JSON; other origins are left to msw (so
 * `onUnhandledRequest: 'error'` catches stray traffic).
 */
export function createHandlers(cp: ControlPlane, options: HandlerOptions): HttpHandler[] {
  const base = new URL(options.baseUrl);
  if (options.storageOrigin !== undefined) cp.storageOrigin = new URL(options.storageOrigin).origin;
  const site: Site = { apiOrigin: base.origin, prefix: base.pathname.replace(/\/+$/, '') };
  return [
    http.all(
      ({ request }) => {
        const origin = new URL(request.url).origin;
        return origin === site.apiOrigin || origin === new URL(cp.storageOrigin).origin;
      },
      ({ request }) => dispatch(cp, site, request),
    ),
  ];
}
