// The ops listener, apart from SMTP: an HTTP(S) server over a table of routes, each with the scope a bearer
// token must carry to reach it (ops.token has them all, ops.tokens some each, a tenant's token sees its
// own mail only). Liveness and readiness are open (probes); /metrics is open only where the config says
// so (a loopback listener with no token, or ops.openMetrics). A scope no token carries is off: 404.
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { OpsScope, OpsToken, TenantRequestBudget } from '../../config/types.js';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Record<string, boolean | string>;
}

/** What a request may see: every tenant's mail, or one tenant's; and whose token it came with. */
export interface OpsAccess {
  readonly tenant?: string;
  /** The token's name (absent for an open scope). */
  readonly by?: string;
}

export interface OpsRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** The JSON body of a POST (undefined otherwise). */
  readonly body: unknown;
  /** The body's bytes as they came (a provider's signature is over them). */
  readonly rawBody: Buffer;
  readonly headers: http.IncomingHttpHeaders;
  readonly access: OpsAccess;
}

/** JSON, or text with its content type (metrics), with a status. */
export type OpsAnswer =
  | { readonly status: number; readonly body: unknown }
  | { readonly status: number; readonly text: string; readonly contentType: string; readonly headers?: Readonly<Record<string, string>> };

export interface OpsRoute {
  /** "/metrics", or a prefix ending in "/" ("/trace/"). */
  readonly path: string;
  /** Undefined: open to anyone who reaches the listener. */
  readonly scope?: OpsScope;
  /** Methods it answers; others get 405. */
  readonly methods: readonly string[];
  /** The largest body it takes (default 64 KiB). */
  readonly maxBodyBytes?: number;
  handle(req: OpsRequest): Promise<OpsAnswer>;
}

/** Who may do what, from the snapshot in force (tokens can change on reload). */
export interface OpsAccessPolicy {
  readonly tokens: readonly OpsToken[];
  readonly openScopes: readonly OpsScope[];
  /** What a tenant's token may ask a second (absent: not counted). */
  readonly tenantRequests?: TenantRequestBudget;
}

export interface OpsServer {
  readonly port: number;
  /** Serves a renewed certificate to new TLS connections (ops.tls). */
  updateCertificate(material: { key: Buffer; cert: Buffer }): void;
  close(): Promise<void>;
}

/** A request's JSON body is small: a candidate upstream, a query. */
const MAX_BODY_BYTES = 64 * 1024;

/**
 * A tenant's token is one party among many, and each of its requests is work on the thread that takes
 * everyone's mail (a trace query, a send-test): so many a second (ops.tenantRequests), with room for a
 * page's bursts. The platform's own tokens (no tenant) are the operator's, and are not counted.
 */
class TenantBudgets {
  readonly #buckets = new WeakMap<OpsToken, { level: number; at: number }>();

  /** 0 when the request may go; else the seconds until it may. */
  take(token: OpsToken, budget: TenantRequestBudget, now: number): number {
    const b = this.#buckets.get(token) ?? { level: budget.burst, at: now };
    b.level = Math.min(budget.burst, b.level + ((now - b.at) / 1000) * budget.perSecond);
    b.at = now;
    this.#buckets.set(token, b);
    if (b.level < 1) return Math.ceil((1 - b.level) / budget.perSecond);
    b.level -= 1;
    return 0;
  }
}

export async function startOpsServer(
  listen: { readonly host: string; readonly port: number; readonly tls?: { readonly key: Buffer; readonly cert: Buffer } },
  routes: readonly OpsRoute[],
  policy: () => OpsAccessPolicy,
): Promise<OpsServer> {
  const budgets = new TenantBudgets();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const send = (answer: OpsAnswer) => {
      const text = 'text' in answer ? answer.text : `${JSON.stringify(answer.body)}\n`;
      res.writeHead(answer.status, {
        'content-type': 'text' in answer ? answer.contentType : 'application/json',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        ...('text' in answer ? answer.headers : {}),
      });
      res.end(text);
    };
    const url = new URL(req.url ?? '/', 'http://ops.invalid');
    const path = url.pathname;
    const route = routes.find((r) => path === r.path || (r.path.endsWith('/') && path.startsWith(r.path)));
    if (!route) return send({ status: 404, body: { error: `not found: ${routes.map((r) => r.path).join(', ')}` } });
    const current = policy();
    const access = authorize(route.scope, req.headers.authorization, current);
    if (access.kind !== 'ok') {
      if (access.status === 401) res.setHeader('www-authenticate', 'Bearer');
      return send({ status: access.status, body: { error: access.error } });
    }
    const budget = current.tenantRequests;
    const wait = access.token?.tenant !== undefined && budget ? budgets.take(access.token, budget, Date.now()) : 0;
    if (wait > 0 && budget) {
      res.setHeader('retry-after', String(wait));
      return send({ status: 429, body: { error: `over this tenant token's ${budget.perSecond} requests a second (ops.tenantRequests)` } });
    }
    if (!route.methods.includes(req.method ?? 'GET')) return send({ status: 405, body: { error: `${route.methods.join(' or ')} only` } });
    readBody(req, route.maxBodyBytes ?? MAX_BODY_BYTES)
      .then(
        ({ body, raw }) => route.handle({ method: req.method ?? 'GET', path, query: url.searchParams, body, rawBody: raw, headers: req.headers, access: access.access }),
        (err: Error) => ({ status: 400, body: { error: err.message } }),
      )
      .then(send, (err: Error) => send({ status: 500, body: { error: err.message } }));
  };
  const server = listen.tls ? https.createServer({ key: listen.tls.key, cert: listen.tls.cert, minVersion: 'TLSv1.2' }, handler) : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    updateCertificate: (material) => {
      if (server instanceof https.Server) server.setSecureContext({ key: material.key, cert: material.cert, minVersion: 'TLSv1.2' });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

type Authorized = { readonly kind: 'ok'; readonly access: OpsAccess; readonly token?: OpsToken } | { readonly kind: 'refused'; readonly status: number; readonly error: string };

function authorize(scope: OpsScope | undefined, header: string | undefined, policy: OpsAccessPolicy): Authorized {
  if (scope === undefined || policy.openScopes.includes(scope)) return { kind: 'ok', access: {} };
  const holders = policy.tokens.filter((t) => t.scopes.includes(scope));
  if (holders.length === 0) return { kind: 'refused', status: 404, error: `off: no token in ops.token or ops.tokens has the ${scope} scope` };
  const given = Buffer.from(/^Bearer (.+)$/i.exec(header ?? '')?.[1] ?? '');
  // Every token is compared, whatever matched: how long the check takes says nothing about which did.
  let found: OpsToken | undefined;
  for (const t of policy.tokens) {
    const wanted = Buffer.from(t.token);
    if (given.length === wanted.length && timingSafeEqual(given, wanted)) found = t;
  }
  if (!found) return { kind: 'refused', status: 401, error: 'a valid Authorization: Bearer token is required' };
  if (!found.scopes.includes(scope)) return { kind: 'refused', status: 403, error: `this token does not have the ${scope} scope` };
  return { kind: 'ok', token: found, access: { by: found.name, ...(found.tenant !== undefined ? { tenant: found.tenant } : {}) } };
}

function readBody(req: http.IncomingMessage, max: number): Promise<{ body: unknown; raw: Buffer }> {
  if (req.method !== 'POST') {
    req.resume();
    return Promise.resolve({ body: undefined, raw: Buffer.alloc(0) });
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.destroy();
        return reject(new Error(`the body is larger than ${max} bytes`));
      }
      chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      try {
        resolve({ body: JSON.parse(raw.toString('utf8') || 'null'), raw });
      } catch {
        reject(new Error('the body is not JSON'));
      }
    });
  });
}
