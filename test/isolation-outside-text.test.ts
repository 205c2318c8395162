// Text from outside (a token endpoint a tenant typed in, an upstream's reply) is cleaned and bounded before
// it reaches any log, store, metric label, event or reply: a hostile endpoint answering a 60 KB error that
// ends in a forged SMTP line adds next to nothing anywhere, injects no line, and makes no metric series.
// Real parts: a token endpoint of the attacker's (node:http), the relay in queue mode with its trace and a
// webhook, and the webhook's receiver.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { makeTestCerts } from './helpers/certs.js';
import { sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';
import { startReceiver } from './helpers/webhook-receiver.js';
import { until } from './helpers/wait.js';

const certs = makeTestCerts();
const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const RECIPIENTS = Array.from({ length: 50 }, (_, i) => `r${i}@example.com`);

/** A token endpoint that refuses every grant with the `error` it is given. */
async function tokenEndpoint(t: Test, error: () => string): Promise<string> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: error(), error_description: `AADSTS7000215: ${'d'.repeat(2000)}\r\n250 2.0.0 injected` }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
}

interface Footprint {
  readonly logs: number;
  readonly trace: number;
  readonly webhook: number;
  readonly metrics: string;
}

/** One 50-recipient message through a relay whose tenant's token endpoint says `error`: what it leaves behind. */
async function footprint(t: Test, error: () => string): Promise<Footprint & { relay: TestRelay; traceText: string }> {
  const tokenUrl = await tokenEndpoint(t, error);
  const upstream = await startUpstream({ tls: 'starttls', cert: certs.server, xoauth2: { accepts: () => true, refuses: 'microsoft' } });
  t.teardown(() => upstream.close());
  const receiver = await startReceiver(SECRET);
  t.teardown(() => receiver.close());
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: 9, tls: none }
events: { webhook: { url: "${receiver.url}", secret: "${SECRET}" } }
tenants:
  - id: evil
    match: { domains: [evil.test] }
    upstream: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, ca: ${certs.caFile}, auth: { kind: oauth2, provider: client-credentials, tokenUrl: "${tokenUrl}", clientId: c, clientSecret: s, mailbox: a@evil.test } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'app@evil.test', to: RECIPIENTS });
  const before = { logs: JSON.stringify(relay.logs).length, webhook: 0 };
  await until(() => receiver.events.length === 50);
  before.webhook = receiver.requests.reduce((n, r) => n + r.body.length, 0);
  await relay.relay.scheduler.runDue(Date.now());
  await until(() => receiver.events.length === 100);
  const traced = relay.relay.trace?.find({ tenant: 'evil' }) ?? [];
  const traceText = JSON.stringify(traced.flatMap((m) => m.events.filter((e) => e.type !== 'accepted')));
  return {
    relay,
    traceText,
    logs: JSON.stringify(relay.logs).length - before.logs,
    trace: traceText.length,
    webhook: receiver.requests.reduce((n, r) => n + r.body.length, 0) - before.webhook,
    metrics: await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text(),
  };
}

t.test("a token endpoint's 60 KB error adds less than 10 KB to any store, and no line of its own", async (t) => {
  const benign = await footprint(t, () => 'invalid_client');
  const hostile = await footprint(t, () => `${'e'.repeat(60_000)}\r\n250 2.0.0 injected`);
  for (const store of ['logs', 'trace', 'webhook'] as const) {
    t.ok(hostile[store] - benign[store] < 10_000, `${store}: ${hostile[store]} bytes against ${benign[store]} for a plain refusal`);
  }
  t.notMatch(hostile.traceText, /\\r|\\n|injected/, 'nothing of its text is in the trace but a bounded, one-line reason');
  t.match(hostile.traceText, /no OAuth2 access token \(unreadable-error AADSTS7000215\)/);
  const longest = Math.max(...[...hostile.metrics.matchAll(/="([^"]*)"/g)].map((m) => m[1]?.length ?? 0));
  t.ok(longest <= 64, `the longest metric label value is ${longest} characters`);
});

t.test('every error word an endpoint makes up lands in one metric series, not one each', async (t) => {
  let n = 0;
  const { metrics, relay } = await footprint(t, () => `made_up_error_${n++}`);
  await relay.relay.scheduler.runDue(Date.now() + 10 * 60_000);
  await relay.relay.scheduler.runDue(Date.now() + 30 * 60_000);
  const after = await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();
  t.ok(n >= 2, `${n} different error words`);
  t.equal(after.split('\n').filter((l) => l.startsWith('tenant_relay_oauth2_token_requests_total{')).length, 1, 'one series');
  t.match(metrics, /tenant_relay_oauth2_token_requests_total\{upstream="evil",provider="client-credentials",result="refused",error="other"\}/);
});
