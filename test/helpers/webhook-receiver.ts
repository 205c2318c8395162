// The platform's side of delivery events: a node:http receiver on loopback that checks each request's
// Standard Webhooks signature the way the README tells a platform to (written here on its own, not with
// the relay's code), records the events, and can be told to fail, hang, or go down and come back.
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly verified: boolean;
}

export type ReceiverMode = 'ok' | 'fail' | 'hang';

export interface Receiver {
  readonly url: string;
  readonly requests: ReceivedRequest[];
  /** Events of the requests it answered 2xx to, verified, in arrival order. */
  readonly events: Record<string, unknown>[];
  mode: ReceiverMode;
  /** Requests that are hanging now. */
  readonly hanging: number;
  stop(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Standard Webhooks v1: HMAC-SHA256 over "id.timestamp.body" with the base64 key after whsec_, five minutes' tolerance. */
export function verifySignature(secret: string, headers: http.IncomingHttpHeaders, body: string, nowSeconds = Date.now() / 1000): boolean {
  const id = String(headers['webhook-id'] ?? '');
  const timestamp = String(headers['webhook-timestamp'] ?? '');
  if (!id || !/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > 300) return false;
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  return String(headers['webhook-signature'] ?? '')
    .split(' ')
    .some((candidate) => {
      const [version, signature] = candidate.split(',');
      const given = Buffer.from(signature ?? '', 'base64');
      return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
    });
}

export async function startReceiver(secret: string): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const events: Record<string, unknown>[] = [];
  const hanging = new Set<http.ServerResponse>();
  const state = { mode: 'ok' as ReceiverMode };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const verified = verifySignature(secret, req.headers, body);
      requests.push({ headers: req.headers, body, verified });
      if (state.mode === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      if (state.mode === 'fail' || !verified) {
        res.writeHead(verified ? 503 : 401).end();
        return;
      }
      events.push(...(JSON.parse(body) as { events: Record<string, unknown>[] }).events);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    url: `http://127.0.0.1:${port}/relay/events`,
    requests,
    events,
    get mode() {
      return state.mode;
    },
    set mode(m: ReceiverMode) {
      state.mode = m;
    },
    get hanging() {
      return hanging.size;
    },
    stop,
    restart: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    close: () => (server.listening ? stop() : Promise.resolve()),
  };
}
