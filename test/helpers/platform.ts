// A real HTTP server playing the platform's tenant API: GET /tenants/lookup?auth=|sender=|id=. The test
// sets what it answers (a record, 404, an error, silence, a delay) and reads what was asked.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface PlatformAnswer {
  readonly status?: number;
  /** JSON-encoded unless it is already a string. */
  readonly body?: unknown;
  /** Wait this long before answering. */
  readonly delayMs?: number;
  /** Never answer (the connection stays open until the server closes). */
  readonly hang?: boolean;
}

export interface Platform {
  readonly url: string;
  /** Every lookup asked, as "by=value". */
  readonly requests: string[];
  /** The Authorization header of the last request. */
  lastAuthorization: string | undefined;
  answer: (by: string, value: string) => PlatformAnswer;
  close(): Promise<void>;
}

export async function startPlatform(answer: Platform['answer']): Promise<Platform> {
  const platform: Platform = {
    url: '',
    requests: [],
    lastAuthorization: undefined,
    answer,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://platform');
    platform.lastAuthorization = req.headers.authorization;
    const [by = '', value = ''] = [...url.searchParams.entries()][0] ?? [];
    if (url.pathname !== '/api/tenants/lookup') {
      res.writeHead(400).end();
      return;
    }
    platform.requests.push(`${by}=${value}`);
    const a = platform.answer(by, value);
    if (a.hang) return;
    const send = () => {
      if (res.destroyed) return;
      const body = a.body === undefined ? '' : typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
      res.writeHead(a.status ?? 200, { 'content-type': 'application/json' }).end(body);
    };
    if (a.delayMs) setTimeout(send, a.delayMs);
    else send();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  Object.assign(platform, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api` });
  return platform;
}

export const notFound: PlatformAnswer = { status: 404 };
