import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { getResponse } from 'msw';
import { handleAdmin } from './admin.js';
import { ControlPlane } from './control-plane.js';
import type { Downloads } from './downloads.js';
import { createHandlers } from './handlers.js';
import { isPageRequest, servePage } from './page.js';

export interface ControlPlaneServerOptions {
  /** 0 (default) picks an ephemeral port. */
  port?: number;
  /** Loopback only: the default 127.0.0.1. */
  host?: string;
  cp?: ControlPlane;
  /** Release files for packaging/install.sh under /downloads/ (see downloads.ts). */
  downloads?: Downloads;
}

export interface ControlPlaneServer {
  cp: ControlPlane;
  /** http://127.0.0.1:<port>: what the agent uses as BYTEOR_API_BASE_URL. */
  baseUrl: string;
  /** http://localhost:<port>: the same server as a second origin, for pre-signed bundle URLs. */
  storageOrigin: string;
  /** http://127.0.0.1:<port>/_admin: the admin API (see admin.ts). */
  adminUrl: string;
  port: number;
  close(): Promise<void>;
}

/** Hop-by-hop headers describe this connection, not the request; a fetch Request must not carry them. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

/**
 * The request body as a web stream with backpressure. Not Readable.toWeb: its cancel() destroys
 * the socket, while a handler that refuses an upload early (413, 429) must still be able to
 * answer; here cancelling just discards the rest of the body.
 */
function requestBody(req: IncomingMessage): ReadableStream<Uint8Array> {
  let finished = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        req.on('data', (chunk: Buffer) => {
          if (finished) return;
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) req.pause();
        });
        req.on('end', () => {
          if (!finished) controller.close();
          finished = true;
        });
        req.on('error', (err) => {
          if (!finished) controller.error(err);
          finished = true;
        });
        req.on('close', () => {
          if (!finished && !req.complete) controller.error(new Error('the client aborted the request'));
          finished = true;
        });
      },
      pull() {
        req.resume();
      },
      cancel() {
        finished = true;
        req.resume();
      },
    },
    { highWaterMark: 4, size: () => 1 },
  );
}

function toFetchRequest(req: IncomingMessage, origin: string, signal: AbortSignal): Request {
  const host = req.headers.host ?? new URL(origin).host;
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] ?? '';
    if (!HOP_BY_HOP.has(name.toLowerCase())) headers.append(name, req.rawHeaders[i + 1] ?? '');
  }
  const method = req.method ?? 'GET';
  const init: RequestInit & { duplex?: 'half' } = { method, headers, signal };
  if (method !== 'GET' && method !== 'HEAD') {
    init.body = requestBody(req);
    init.duplex = 'half';
  }
  return new Request(`http://${host}${req.url ?? '/'}`, init);
}

async function writeResponse(req: IncomingMessage, res: ServerResponse, response: Response): Promise<void> {
  // A network error (a `drop` fault, an outage): close the connection without a byte.
  if (response.type === 'error') {
    req.socket.destroy();
    return;
  }
  res.statusCode = response.status;
  response.headers.forEach((value, name) => res.setHeader(name, value));
  // Unread upload bytes are drained (discarded) so the answer still reaches the client.
  req.resume();
  if (response.body === null) {
    res.end();
    return;
  }
  try {
    await pipeline(Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>), res);
  } catch {
    // The body stream failed (a `truncateAfterBytes` fault) or the client left: the client must
    // see a dropped connection, never a short body that looks complete.
    req.socket.destroy();
  }
}

/**
 * Serves the fake control plane over real HTTP on loopback: the same msw handlers behind
 * node:http via msw's getResponse, plus the admin API under /_admin/. Keep-alive idle timeout
 * stays at Node's default (5 s), which is realistic (see DESIGN.md "Keep-alive race").
 */
export async function startControlPlaneServer(options: ControlPlaneServerOptions = {}): Promise<ControlPlaneServer> {
  const cp = options.cp ?? new ControlPlane();
  const host = options.host ?? '127.0.0.1';
  let handlers: ReturnType<typeof createHandlers> = [];
  let baseUrl = '';

  const server: Server = createServer((req, res) => {
    void (async () => {
      if (options.downloads !== undefined && (await options.downloads.handle(req, res))) return;
      if ((req.url ?? '').startsWith('/_admin/') || req.url === '/_admin') {
        await handleAdmin(cp, req, res, { baseUrl, storageOrigin: cp.storageOrigin });
        return;
      }
      // GET / is a human-readable view of the state (page.ts); the API has no route there.
      if (isPageRequest(req)) {
        servePage(cp, req, res);
        return;
      }
      const controller = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) controller.abort(new Error('the client went away'));
      });
      try {
        const request = toFetchRequest(req, baseUrl, controller.signal);
        const response = (await getResponse(handlers, request)) ?? new Response(JSON.stringify({ error: { code: 'not_found', message: `no such origin or route: ${request.url}` } }), { status: 404, headers: { 'content-type': 'application/json' } });
        await writeResponse(req, res, response);
      } catch (err) {
        if (!res.headersSent) {
          res.statusCode = 500;
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ error: { code: 'internal_error', message: err instanceof Error ? err.message : String(err) } }));
        } else req.socket.destroy();
      }
    })();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const storageOrigin = `http://localhost:${port}`;
  handlers = createHandlers(cp, { baseUrl, storageOrigin });

  return {
    cp,
    baseUrl,
    storageOrigin,
    adminUrl: `${baseUrl}/_admin`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err === undefined ? resolve() : reject(err)));
        // Idle keep-alive sockets would hold close() open for up to 5 s.
        server.closeAllConnections();
      }),
  };
}
