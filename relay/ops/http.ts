// The ops listener, apart from SMTP: Prometheus text at /metrics, liveness at /healthz, readiness at
// /readyz (config loaded, every listener up, spool writable, not shutting down), send-test outcomes, and
// the admin endpoints the platform's own pages call, behind `ops.token` (off without one).
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SendTestRecord } from './send-tests.js';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Record<string, boolean | string>;
}

/** An admin endpoint's answer, sent as JSON. */
export interface AdminAnswer {
  readonly status: number;
  readonly body: unknown;
}

export interface AdminRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** The JSON body of a POST (undefined otherwise). */
  readonly body: unknown;
}

export interface OpsEndpoints {
  /** Prometheus text: this relay's, or every worker's aggregated. */
  readonly metrics: () => Promise<{ readonly contentType: string; readonly text: string }>;
  readonly readiness: () => Promise<Readiness>;
  /** A send-test outcome by its token (this relay's, or one shared through Redis or the workers). */
  readonly sendTest: (token: string) => Promise<SendTestRecord | undefined>;
  /** The bearer token the admin endpoints want, from the snapshot in force (undefined: they are off). */
  readonly adminToken: () => string | undefined;
  /** Admin endpoints by path prefix ("/preflight", "/trace/"); each answers JSON. */
  readonly admin: Readonly<Record<string, (req: AdminRequest) => Promise<AdminAnswer>>>;
}

/** An admin request's JSON body is small: a candidate upstream, a query. */
const MAX_BODY_BYTES = 64 * 1024;

export async function startOpsServer(host: string, port: number, ops: OpsEndpoints): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const reply = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const json = (status: number, body: unknown) => reply(status, 'application/json', `${JSON.stringify(body)}\n`);
    const url = new URL(req.url ?? '/', 'http://ops.invalid');
    const path = url.pathname;
    const admin = Object.entries(ops.admin).find(([prefix]) => path === prefix || (prefix.endsWith('/') && path.startsWith(prefix)));
    if (admin) {
      const token = ops.adminToken();
      if (token === undefined) return json(404, { error: 'admin endpoints are off: set ops.token' });
      if (!bearerMatches(req.headers.authorization, token)) {
        res.setHeader('www-authenticate', 'Bearer');
        return json(401, { error: 'a valid Authorization: Bearer token is required' });
      }
      readBody(req).then(
        (body) => admin[1]({ method: req.method ?? 'GET', path, query: url.searchParams, body }),
        (err: Error) => Promise.resolve({ status: 400, body: { error: err.message } }),
      ).then(
        (answer) => json(answer.status, answer.body),
        (err: Error) => json(500, { error: err.message }),
      );
      return;
    }
    if (req.method !== 'GET') return reply(405, 'text/plain', 'GET only\n');
    if (path === '/healthz') return reply(200, 'text/plain', 'ok\n');
    if (path === '/readyz') {
      ops.readiness().then(
        (r) => json(r.ready ? 200 : 503, r),
        (err: Error) => json(503, { ready: false, checks: { error: err.message } }),
      );
      return;
    }
    if (path === '/metrics') {
      ops.metrics().then(
        ({ contentType, text }) => reply(200, contentType, text),
        (err: Error) => reply(500, 'text/plain', `${err.message}\n`),
      );
      return;
    }
    const token = /^\/send-test\/([A-Za-z0-9-]{8,64})$/.exec(path)?.[1];
    if (token) {
      ops.sendTest(token).then(
        (found) => (found ? json(200, found) : json(404, { pending: true })),
        () => json(404, { pending: true }),
      );
      return;
    }
    reply(404, 'text/plain', `not found: /metrics, /healthz, /readyz, /send-test/<token>, ${Object.keys(ops.admin).join(', ')}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(/^Bearer (.+)$/i.exec(header ?? '')?.[1] ?? '');
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

function readBody(req: http.IncomingMessage): Promise<unknown> {
  if (req.method !== 'POST') {
    req.resume();
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.destroy();
        return reject(new Error(`the body is larger than ${MAX_BODY_BYTES} bytes`));
      }
      chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null'));
      } catch {
        reject(new Error('the body is not JSON'));
      }
    });
  });
}
