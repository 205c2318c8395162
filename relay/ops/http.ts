// The ops listener, apart from SMTP: Prometheus text at /metrics, liveness at /healthz, readiness at
// /readyz (config loaded, every listener up, spool writable, not shutting down).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RelayMetrics } from './metrics.js';
import type { SendTests } from './send-tests.js';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Record<string, boolean | string>;
}

export async function startOpsServer(
  host: string,
  port: number,
  metrics: RelayMetrics,
  readiness: () => Promise<Readiness>,
  sendTests: SendTests,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const reply = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return reply(405, 'text/plain', 'GET only\n');
    if (path === '/healthz') return reply(200, 'text/plain', 'ok\n');
    if (path === '/readyz') {
      readiness().then(
        (r) => reply(r.ready ? 200 : 503, 'application/json', `${JSON.stringify(r)}\n`),
        (err: Error) => reply(503, 'application/json', `${JSON.stringify({ ready: false, checks: { error: err.message } })}\n`),
      );
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => reply(200, metrics.registry.contentType, text),
        (err: Error) => reply(500, 'text/plain', `${err.message}\n`),
      );
      return;
    }
    const token = /^\/send-test\/([A-Za-z0-9-]{8,64})$/.exec(path ?? '')?.[1];
    if (token) {
      const found = sendTests.get(token);
      return found ? reply(200, 'application/json', `${JSON.stringify(found)}\n`) : reply(404, 'application/json', '{"pending":true}\n');
    }
    reply(404, 'text/plain', 'not found: /metrics, /healthz, /readyz, /send-test/<token>\n');
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
