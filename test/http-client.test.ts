// The relay's one HTTP client (tenant source, token endpoints, webhooks): a deadline, a cap on the answer,
// connections kept alive, and a request pinned to a checked address never sent over another one.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { requestHttp } from '../relay/http-client.js';

/** A server on `host` answering with its own name; counts the connections it was given. */
async function server(t: Test, host: string, port = 0, answer: (res: http.ServerResponse) => void = (res) => res.end(host)) {
  const connections = { opened: 0 };
  const s = http.createServer((_req, res) => answer(res));
  s.on('connection', () => connections.opened++);
  await new Promise<void>((resolve) => s.listen(port, host, resolve));
  t.teardown(() => new Promise<void>((resolve) => s.close(() => resolve())));
  return { port: (s.address() as AddressInfo).port, connections };
}

t.test('requests to one endpoint share a kept-alive connection', async (t) => {
  const { port, connections } = await server(t, '127.0.0.1');
  for (let i = 0; i < 3; i++) {
    const answer = await requestHttp({ url: new URL(`http://127.0.0.1:${port}/events`), method: 'POST', body: '{}', timeoutMs: 2000, maxBytes: 1024 });
    t.match(answer, { kind: 'answered', status: 200, truncated: false });
  }
  t.equal(connections.opened, 1, 'one connection for three requests');
});

t.test('a request pinned to an address goes there, never over a kept-alive connection to another address of the same host', async (t) => {
  // Two servers on one port at two loopback addresses: one name, two answers a tenant's host policy
  // could have checked differently.
  const first = await server(t, '127.0.0.1');
  await server(t, '127.0.0.2', first.port);
  const url = new URL(`http://idp.invalid:${first.port}/token`);
  const ask = async (address: string) => {
    const answer = await requestHttp({ url, method: 'POST', body: 'grant_type=x', timeoutMs: 2000, maxBytes: 1024, address });
    return answer.kind === 'answered' ? answer.body.toString() : answer.message;
  };
  t.equal(await ask('127.0.0.1'), '127.0.0.1');
  t.equal(await ask('127.0.0.2'), '127.0.0.2', 'the second request reached the address it was pinned to');
  t.equal(await ask('127.0.0.1'), '127.0.0.1');
});

t.test('an answer past the cap is cut there and marked truncated; a silent server is a timeout', async (t) => {
  const big = await server(t, '127.0.0.1', 0, (res) => res.end('x'.repeat(100_000)));
  const answer = await requestHttp({ url: new URL(`http://127.0.0.1:${big.port}/`), timeoutMs: 2000, maxBytes: 1000 });
  t.match(answer, { kind: 'answered', status: 200, truncated: true });
  t.equal(answer.kind === 'answered' ? answer.body.length : -1, 1000);
  const silent = await server(t, '127.0.0.1', 0, () => {});
  const none = await requestHttp({ url: new URL(`http://127.0.0.1:${silent.port}/`), timeoutMs: 300, maxBytes: 1000 });
  t.match(none, { kind: 'failed', timeout: true });
});
