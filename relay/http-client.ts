// The relay's one HTTP client, for the three endpoints it calls: the platform's tenant source (GET), an
// OAuth2 token endpoint (POST a form), a delivery-event webhook (POST JSON). Each request has a deadline,
// a cap on the answer it reads, TLS 1.2 or later checked against the system store or a private CA, and
// connections kept alive between requests (a TLS handshake per lookup or per batch would cost more than
// the request). A request pinned to an address the host policy checked gets a connection of its own:
// a kept-alive one could have been opened to another address for another tenant's policy.
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';

export interface HttpRequest {
  readonly url: URL;
  readonly method?: 'GET' | 'POST';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** PEM text of a private CA, in place of the system store. */
  readonly ca?: string;
  readonly timeoutMs: number;
  /** Bytes of the answer read at most: past them the connection is closed and the answer marked truncated. */
  readonly maxBytes: number;
  /** Connect here instead of resolving the URL's host (the address a host policy checked). */
  readonly address?: string;
  /** Another reason to give up (the caller's own stop). */
  readonly signal?: AbortSignal;
}

export type HttpAnswer =
  | { readonly kind: 'answered'; readonly status: number; readonly body: Buffer; readonly truncated: boolean }
  /**
   * No whole answer: `timeout` when the deadline passed; else the system's error `code` (ECONNREFUSED...)
   * and its message. `midAnswer`: the status line had come, the connection was lost in the body.
   */
  | { readonly kind: 'failed'; readonly timeout: boolean; readonly midAnswer: boolean; readonly code?: string; readonly message: string };

const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 16 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 16 }),
};

export function requestHttp(req: HttpRequest): Promise<HttpAnswer> {
  const deadline = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, deadline]) : deadline;
  const secure = req.url.protocol === 'https:';
  const pinned = req.address;
  const lookup: LookupFunction | undefined = pinned
    ? (_host, opts, done) => (opts.all ? done(null, [{ address: pinned, family: pinned.includes(':') ? 6 : 4 }]) : done(null, pinned, pinned.includes(':') ? 6 : 4))
    : undefined;
  return new Promise((resolve) => {
    const failed = (err: Error, midAnswer: boolean) => {
      const code = (err as NodeJS.ErrnoException).code;
      resolve({ kind: 'failed', timeout: deadline.aborted, midAnswer, ...(typeof code === 'string' && code !== 'ABORT_ERR' ? { code } : {}), message: err.message });
    };
    const request = (secure ? https : http).request(
      req.url,
      {
        method: req.method ?? 'GET',
        signal,
        headers: { ...req.headers, ...(req.body !== undefined ? { 'content-length': String(Buffer.byteLength(req.body)) } : {}) },
        ...(req.ca !== undefined ? { ca: req.ca } : {}),
        ...(secure ? { minVersion: 'TLSv1.2' as const } : {}),
        ...(lookup ? { lookup, agent: false } : { agent: agents[secure ? 'https:' : 'http:'] }),
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          if (size + chunk.length > req.maxBytes) {
            chunks.push(chunk.subarray(0, req.maxBytes - size));
            size = req.maxBytes;
            response.destroy();
            return resolve({ kind: 'answered', status: response.statusCode ?? 0, body: Buffer.concat(chunks), truncated: true });
          }
          size += chunk.length;
          chunks.push(chunk);
        });
        response.on('error', (err) => failed(err, true));
        response.on('end', () => resolve({ kind: 'answered', status: response.statusCode ?? 0, body: Buffer.concat(chunks), truncated: false }));
      },
    );
    request.on('error', (err) => failed(err, false));
    request.end(req.body);
  });
}

/** The answer's body as JSON, or undefined when it is not JSON. */
export function jsonOf(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}
