// Who may use the ops listener, and for what: tokens carry scopes (metrics, send-test, preflight, trace,
// drain), a tenant's token sees that tenant's mail only, /metrics is open only on a loopback listener
// with no token, /readyz tells no file path, a drain takes only a sane number of seconds and can be
// undone, and the listener can speak TLS (with its certificate reloaded when it is renewed).
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseConfig } from '../config/load.js';
import { makeTestCerts } from './helpers/certs.js';
import { runCli } from './helpers/cli.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { openRawSession } from './helpers/smtp-client.js';
import { closedPort, startUpstream } from './helpers/upstream.js';

const certs = makeTestCerts();
const OPERATOR = 'operator-token-0123456789';
const METRICS = 'metrics-token-0123456789';
const ACME_DESK = 'acme-support-desk-token-0123';
const GLOBEX_DESK = 'globex-support-desk-token-0123';
const DRAIN = 'drain-only-token-0123456789';
const upstream = await startUpstream();
t.teardown(() => upstream.close());

const tokens = `tokens:
    - { token: ${METRICS}, scopes: [metrics] }
    - { token: ${ACME_DESK}, scopes: [trace], tenant: acme }
    - { token: ${GLOBEX_DESK}, scopes: [trace], tenant: globex }
    - { token: ${DRAIN}, scopes: [drain] }`;

async function relayWithTokens(t: Test, extraOps = '') {
  const relay = await startTestRelay(
    `ops:
  port: 0
  token: ${OPERATOR}
  ${tokens}
  ${extraOps}
delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
tenants:
  - { id: acme, match: { domains: [acme.test] } }
  - { id: globex, match: { domains: [globex.test] } }
`,
  );
  t.teardown(() => relay.close());
  return relay;
}

const get = (port: number | undefined, p: string, token?: string, method = 'GET') => fetch(`http://127.0.0.1:${port}${p}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

t.test('each endpoint needs a token with its scope: 401 without one, 403 with one that lacks it', async (t) => {
  const relay = await relayWithTokens(t);
  const port = relay.relay.opsPort;
  t.equal((await get(port, '/metrics')).status, 401, 'metrics are not open once tokens exist');
  t.equal((await get(port, '/metrics', METRICS)).status, 200);
  t.equal((await get(port, '/metrics', OPERATOR)).status, 200, 'ops.token has every scope');
  t.equal((await get(port, '/trace?rcpt=x@example.com', METRICS)).status, 403, 'a metrics token reads no mail');
  t.equal((await get(port, '/drain', METRICS)).status, 403);
  t.equal((await get(port, '/drain', DRAIN)).status, 200);
  t.equal((await get(port, '/preflight', DRAIN, 'POST')).status, 403);
  t.equal((await get(port, '/metrics', 'not-a-token-0123456789')).status, 401);
  t.equal((await get(port, '/healthz')).status, 200, 'liveness is open (probes)');
  const ready = await get(port, '/readyz');
  t.equal(ready.status, 200, 'readiness is open (probes)');
  t.notMatch(await ready.text(), /\//, 'and names no file path');
});

t.test("a tenant's token sees its own tenant's mail only, whatever it asks by", async (t) => {
  const relay = await relayWithTokens(t);
  const port = relay.relay.opsPort;
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'shared@example.com' });
  await sendThrough(relay.port, { from: 'app@globex.test', to: 'shared@example.com' });
  await new Promise((r) => setTimeout(r, 300));
  const asDesk = (await (await get(port, '/trace?rcpt=shared@example.com', ACME_DESK)).json()) as { messages: { tenant: string; queueId: string }[] };
  t.same(asDesk.messages.map((m) => m.tenant), ['acme'], "globex's message to the same person is not shown");
  const all = (await (await get(port, '/trace?rcpt=shared@example.com', OPERATOR)).json()) as { messages: { tenant: string; queueId: string }[] };
  t.same(all.messages.map((m) => m.tenant).sort(), ['acme', 'globex']);
  const globexId = all.messages.find((m) => m.tenant === 'globex')?.queueId ?? '';
  t.same(((await (await get(port, `/trace/${globexId}`, ACME_DESK)).json()) as { messages: unknown[] }).messages, [], 'nor by its queue id');
  t.equal((await get(port, '/trace?tenant=globex', ACME_DESK)).status, 403, 'nor by asking for the other tenant');
  t.throws(() => parseConfig(`ops: { tokens: [{ token: ${ACME_DESK}, scopes: [trace, drain], tenant: acme }] }\nsmarthost: { host: a.test, tls: none }\n`, 'relay.yaml', {}), { message: /ops\.tokens\[0\]\.scopes: a token with tenant may only have the trace and queue scopes/ });
});

t.test("a tenant's token is held to so many requests a second (429 and Retry-After past its bursts); other tenants' tokens and the operator's are not held back by it", async (t) => {
  const relay = await relayWithTokens(t);
  const port = relay.relay.opsPort;
  // 100 at once: the burst is 30, and ten a second come back, so whatever this machine's speed the
  // last of them are over (unless the hundred took seven seconds).
  const answers = await Promise.all(Array.from({ length: 100 }, () => get(port, '/trace?rcpt=x@example.com', ACME_DESK)));
  const refused = answers.filter((a) => a.status === 429);
  t.ok(refused.length > 0 && answers.filter((a) => a.status === 200).length >= 30, `${100 - refused.length} answered, ${refused.length} refused`);
  t.same(answers.filter((a) => a.status !== 200 && a.status !== 429), [], 'nothing else');
  t.ok(Number(refused[0]?.headers.get('retry-after')) >= 1, 'told when to come back');
  t.match(await refused[0]?.json(), { error: /requests a second/ });
  t.equal((await get(port, '/trace?rcpt=x@example.com', GLOBEX_DESK)).status, 200, "another tenant's token is not held back");
  t.equal((await get(port, '/trace?rcpt=x@example.com', OPERATOR)).status, 200, "nor the operator's");

  const tight = await relayWithTokens(t, 'tenantRequests: { perSecond: 0.1, burst: 2 }');
  const asked = await Promise.all([1, 2, 3].map(() => get(tight.relay.opsPort, '/trace?rcpt=x@example.com', ACME_DESK)));
  t.same(asked.map((a) => a.status).sort(), [200, 200, 429], 'ops.tenantRequests sets the budget');
  t.equal(asked.find((a) => a.status === 429)?.headers.get('retry-after'), '10', 'and the wait: one request at 0.1 a second');
});

t.test('/drain takes a whole number of seconds or nothing; undrain takes mail again', async (t) => {
  const relay = await relayWithTokens(t);
  const port = relay.relay.opsPort;
  for (const bad of ['abc', '-5', '0', '1.5', '99999999']) t.equal((await get(port, `/drain?seconds=${bad}`, DRAIN, 'POST')).status, 400, `seconds=${bad}`);
  t.equal((await get(port, '/readyz')).status, 200, 'none of those drained it');
  t.match(await (await get(port, '/drain?seconds=60', DRAIN, 'POST')).json(), { draining: true });
  t.equal((await get(port, '/readyz')).status, 503);
  const refused = await openRawSession(relay.port);
  t.match(refused.greeting, /^421 4\.3\.2 /);
  refused.close();
  t.match(await (await get(port, '/undrain', DRAIN, 'POST')).json(), { draining: false });
  t.equal((await get(port, '/readyz')).status, 200, 'ready again');
  t.match((await sendThrough(relay.port, { from: 'app@acme.test', to: 'x@example.com' })).response, /^250 /, 'and taking mail');
});

t.test('the commands: drain and undrain through the ops listener, and a clear word when no relay answers', async (t) => {
  const relay = await relayWithTokens(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-ops-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, `ops: { port: ${relay.relay.opsPort}, tokens: [{ token: ${DRAIN}, scopes: [drain] }] }\nsmarthost: { host: 127.0.0.1, tls: none }\n`);
  t.equal((await runCli(['drain', '--config', file, '--timeout-seconds', '5'])).code, 0);
  t.match(await runCli(['undrain', '--config', file]), { code: 0, stdout: /^taking mail again/ });
  const stopped = path.join(dir, 'stopped.yaml');
  fs.writeFileSync(stopped, `ops: { port: ${await closedPort()}, tokens: [{ token: ${DRAIN}, scopes: [drain] }] }\nsmarthost: { host: 127.0.0.1, tls: none }\n`);
  t.match(await runCli(['drain', '--config', stopped]), { code: 1, stderr: /no relay answers on its ops listener at http:\/\/127\.0\.0\.1:\d+ \(is it running\?/ });
});

t.test('metrics are open only on a loopback listener with no token, unless ops.openMetrics says so', async (t) => {
  const openOf = (ops: string) => parseConfig(`ops: { ${ops} }\nsmarthost: { host: a.test, tls: none }\n`, 'relay.yaml', {}).ops.openScopes;
  t.same(openOf('host: 127.0.0.1'), ['metrics', 'send-test']);
  t.same(openOf('host: 0.0.0.0'), [], 'on every address: closed');
  t.same(openOf(`host: 127.0.0.1, token: ${OPERATOR}`), [], 'a token configured: closed');
  t.same(openOf(`host: 0.0.0.0, token: ${OPERATOR}, openMetrics: true`), ['metrics']);
});

t.test('ops over TLS: the listener speaks https with its certificate, and serves a renewed one without a restart', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-ops-tls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'ops.pem');
  const key = path.join(dir, 'ops.key');
  fs.writeFileSync(cert, certs.server.cert);
  fs.writeFileSync(key, certs.server.key);
  const relay = await relayWithTokens(t, `tls: { cert: ${cert}, key: ${key} }`);
  const port = relay.relay.opsPort;
  const ask = (ca: string) =>
    new Promise<{ status: number; issuer: string }>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: '/metrics', ca, headers: { authorization: `Bearer ${METRICS}` } }, (res) => {
          res.resume();
          const peer = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, issuer: String(peer.issuer?.CN) }));
        })
        .on('error', reject);
    });
  t.match(await ask(certs.ca), { status: 200, issuer: 'tenant-relay test CA' });
  await t.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'no cleartext');
  fs.writeFileSync(cert, certs.selfSigned.cert);
  fs.writeFileSync(key, certs.selfSigned.key);
  let renewed = false;
  for (let i = 0; i < 60 && !renewed; i++) {
    await new Promise((r) => setTimeout(r, 100));
    renewed = relay.logs.some((l) => l.event === 'certificate-reloaded' && l.listener === 'ops');
  }
  t.ok(renewed, 'the renewal was noticed');
  t.match(await ask(certs.selfSigned.cert), { status: 200, issuer: 'localhost' }, 'the renewed certificate is served');
});
