import { AbortedError } from '../errors.js';
import { joinApiUrl, transportProblem } from '../config/base-url.js';
import { userAgent } from '../version.js';
import { readBodyLimited, parseErrorBody, MAX_JSON_BYTES, BodyTooLargeError, discardBody } from './body.js';
import { classifyNetworkError, classifyStatus } from './classify.js';
import {
  ForbiddenError,
  PermanentError,
  RateLimitedError,
  TransientError,
  UnauthorizedError,
  type ApiError,
  type RequestFacts,
} from './errors.js';
import { parseRetryAfter, rateLimitResetDelay } from './retry-after.js';

export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * Looks up globalThis.fetch on every call: msw patches the global after modules load, and a
 * copy taken earlier would escape it (DESIGN.md facts).
 */
export const lazyGlobalFetch: FetchLike = (input, init) => globalThis.fetch(input, init);

export const DEFAULT_TIMEOUT_MS = 30_000;

export interface TransportOptions {
  baseUrl: URL;
  allowInsecureHttp?: boolean;
  fetch?: FetchLike;
  /** Wall clock in ms, for Retry-After HTTP-dates. */
  now?: () => number;
}

export interface SendOptions {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD';
  /** An API path ('/api/v1/...') joined to the base, or an absolute URL (bundle downloads). */
  target: string;
  /** Bearer credential; dropped automatically when the target is on another origin. */
  bearer?: string | undefined;
  headers?: Record<string, string>;
  json?: unknown;
  body?: NonNullable<RequestInit['body']>;
  signal?: AbortSignal | undefined;
  /** Overall deadline until finish() is called; null for streams bounded by the dispatcher's idle timeouts. */
  timeoutMs?: number | null;
  /** Non-2xx statuses the caller handles itself (e.g. 304, 416). */
  acceptStatuses?: readonly number[];
  /** The scope this endpoint needs, named in a 403 when the server does not say. */
  scope?: string;
}

export interface Sent {
  response: Response;
  facts: RequestFacts;
  /** Stops the overall timeout; call once the body has been consumed. */
  finish(): void;
}

const TIMEOUT = Symbol('timeout');

export class Transport {
  readonly baseUrl: URL;
  private readonly allowInsecureHttp: boolean;
  private readonly fetchImpl: FetchLike;
  readonly now: () => number;

  constructor(options: TransportOptions) {
    this.baseUrl = options.baseUrl;
    this.allowInsecureHttp = options.allowInsecureHttp ?? false;
    this.fetchImpl = options.fetch ?? lazyGlobalFetch;
    this.now = options.now ?? Date.now;
  }

  /**
   * An API path or a bundle URL: '/x' and 'x' are relative to the base (keeping its path prefix,
   * as API.md says), anything with a scheme is absolute. Undefined when it cannot be parsed.
   */
  resolve(target: string): URL | undefined {
    if (target.startsWith('/')) return joinApiUrl(this.baseUrl, target);
    if (!/^[a-z][a-z0-9+.-]*:/i.test(target)) return joinApiUrl(this.baseUrl, `/${target}`);
    try {
      return new URL(target);
    } catch {
      return undefined;
    }
  }

  isSameOrigin(url: URL): boolean {
    return url.origin === this.baseUrl.origin;
  }

  async send(options: SendOptions): Promise<Sent> {
    const url = this.resolve(options.target);
    if (url === undefined) throw new PermanentError({ method: options.method, path: '(invalid URL)' }, 'refused: not a valid URL');
    const facts: RequestFacts = { method: options.method, path: url.pathname };
    const problem = transportProblem(url, this.allowInsecureHttp);
    if (problem !== undefined) throw new PermanentError(facts, `refused: the URL ${problem}`);

    const headers: Record<string, string> = { 'user-agent': userAgent(), accept: 'application/json', ...options.headers };
    // A credential never leaves for another origin (e.g. a pre-signed storage URL).
    if (options.bearer !== undefined && this.isSameOrigin(url)) headers.authorization = `Bearer ${options.bearer}`;
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    }

    const controller = new AbortController();
    const onCallerAbort = (): void => controller.abort(options.signal?.reason);
    if (options.signal?.aborted === true) throw new AbortedError();
    options.signal?.addEventListener('abort', onCallerAbort, { once: true });
    const timeoutMs = options.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : options.timeoutMs;
    const timer = timeoutMs === null ? undefined : setTimeout(() => controller.abort(TIMEOUT), timeoutMs);
    timer?.unref?.();
    const finish = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onCallerAbort);
    };

    let response: Response;
    try {
      const init: RequestInit & { duplex?: 'half' } = {
        method: options.method,
        headers,
        signal: controller.signal,
        // With redirect 'follow', undici keeps a streamed body in memory for a possible replay, and a
        // redirect could carry the Authorization header somewhere else: the API never redirects.
        redirect: 'error',
      };
      if (body !== undefined) {
        init.body = body;
        if (body instanceof ReadableStream) init.duplex = 'half';
      }
      response = await this.fetchImpl(url, init);
    } catch (err) {
      finish();
      throw this.networkError(err, facts, controller.signal);
    }

    facts.status = response.status;
    facts.requestId = response.headers.get('x-request-id') ?? undefined;
    const accepted = options.acceptStatuses?.includes(response.status) === true;
    if (accepted || (response.status >= 200 && response.status < 300)) return { response, facts, finish };

    try {
      throw await this.statusError(response, facts, options.scope);
    } finally {
      finish();
    }
  }

  /** Sends and reads a JSON body (or none, for 204/304), all under the one timeout. */
  async sendJson(options: SendOptions): Promise<{ status: number; headers: Headers; body: unknown; facts: RequestFacts }> {
    const sent = await this.send(options);
    try {
      const { response } = sent;
      if (response.status === 204 || response.status === 304 || options.method === 'HEAD') {
        discardBody(response.body);
        return { status: response.status, headers: response.headers, body: undefined, facts: sent.facts };
      }
      let bytes: Uint8Array;
      try {
        bytes = await readBodyLimited(response, MAX_JSON_BYTES);
      } catch (err) {
        if (err instanceof BodyTooLargeError) throw new TransientError(sent.facts, 'protocol', 'response body too large', { cause: err });
        throw this.networkError(err, sent.facts, undefined);
      }
      try {
        return { status: response.status, headers: response.headers, body: JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown, facts: sent.facts };
      } catch (err) {
        throw new TransientError(sent.facts, 'protocol', 'response is not valid JSON', { cause: err });
      }
    } finally {
      sent.finish();
    }
  }

  networkError(err: unknown, facts: RequestFacts, signal: AbortSignal | undefined): Error {
    if (err instanceof TransientError || err instanceof AbortedError) return err;
    if (signal?.aborted === true) {
      if (signal.reason === TIMEOUT) return new TransientError(facts, 'timeout', 'timed out');
      return new AbortedError(`${facts.method} ${facts.path} aborted by shutdown`);
    }
    const failure = classifyNetworkError(err);
    return new TransientError(facts, failure.kind, failure.code === undefined ? failure.detail : `${failure.detail} (${failure.code})`, { cause: err });
  }

  private async statusError(response: Response, facts: RequestFacts, endpointScope: string | undefined): Promise<ApiError> {
    let bytes: Uint8Array = new Uint8Array(0);
    try {
      bytes = await readBodyLimited(response, 64 * 1024);
    } catch {
      // An unreadable or huge error body does not change what the status means.
    }
    const parsed = parseErrorBody(bytes, response.headers.get('content-type'));
    facts.code = parsed.code;
    facts.serverMessage = parsed.message;
    const retryAfterHeader = response.headers.get('retry-after');
    switch (classifyStatus(response.status, retryAfterHeader !== null)) {
      case 'unauthorized':
        return new UnauthorizedError(facts);
      case 'forbidden':
        return new ForbiddenError(facts, parsed.scope ?? endpointScope);
      case 'rate_limited': {
        const now = this.now();
        const delay =
          parseRetryAfter(retryAfterHeader, now) ??
          rateLimitResetDelay(response.headers.get('x-ratelimit-remaining'), response.headers.get('x-ratelimit-reset'), now);
        return new RateLimitedError(facts, delay);
      }
      case 'transient':
        return new TransientError(facts, 'server', 'server error');
      default:
        return new PermanentError(facts);
    }
  }
}
