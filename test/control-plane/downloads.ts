import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';

/**
 * Release downloads for packaging/install.sh: `GET /downloads/<name>` serves a release file
 * (byteor-agent-linux-x64, SHA256SUMS, install.sh). Not part of API.md: the product serves
 * releases from BYTEOR_DOWNLOAD_BASE_URL, wherever that is; the fake serves them on its own port
 * so an installer test needs one server. The download base URL is `<baseUrl>/downloads`.
 */
export const DOWNLOADS_PATH = '/downloads/';

export interface DownloadsOptions {
  /** name -> file on disk (read at request time) or content. Takes precedence over `dir`. */
  files?: Record<string, string | Uint8Array>;
  /** Serves every regular file directly inside this directory under its name. */
  dir?: string;
}

export interface DownloadRecord {
  method: string;
  name: string;
  status: number;
}

export class Downloads {
  /** Mutable: tests swap a file (a wrong SHA256SUMS) between runs. */
  readonly files: Record<string, string | Uint8Array>;
  readonly dir: string | undefined;
  readonly requests: DownloadRecord[] = [];

  constructor(options: DownloadsOptions = {}) {
    this.files = { ...(options.files ?? {}) };
    this.dir = options.dir;
  }

  private async resolve(name: string): Promise<{ bytes: Uint8Array } | { path: string; size: number } | undefined> {
    const entry = Object.hasOwn(this.files, name) ? this.files[name] : this.dir === undefined ? undefined : join(this.dir, name);
    if (entry === undefined) return undefined;
    if (typeof entry !== 'string') return { bytes: entry };
    try {
      const info = await stat(entry);
      return info.isFile() ? { path: entry, size: info.size } : undefined;
    } catch {
      return undefined;
    }
  }

  /** Answers the request when it is a download and returns true; false leaves it to the API. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (!path.startsWith(DOWNLOADS_PATH)) return false;
    const method = req.method ?? 'GET';
    const name = decodeURIComponent(path.slice(DOWNLOADS_PATH.length));
    const record = (status: number): void => {
      this.requests.push({ method, name, status });
    };
    // Plain file names only: nothing outside the release.
    const found = name === '' || name !== basename(name) || name.startsWith('.') ? undefined : await this.resolve(name);
    if ((method !== 'GET' && method !== 'HEAD') || found === undefined) {
      const status = found === undefined ? 404 : 405;
      record(status);
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 404 ? `no such download: ${name}\n` : 'method not allowed\n');
      return true;
    }
    record(200);
    const size = 'bytes' in found ? found.bytes.byteLength : found.size;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    if (method === 'HEAD') res.end();
    else if ('bytes' in found) res.end(found.bytes);
    else {
      try {
        await pipeline(createReadStream(found.path), res);
      } catch {
        req.socket.destroy();
      }
    }
    return true;
  }
}
