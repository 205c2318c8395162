// Delivery events to the platform's webhook: one per recipient, accepted then each attempt's outcome, with
// the upstream's reply; signed (Standard Webhooks); at least once and in order per message, through a
// receiver that goes down, a relay restart, and a receiver that hangs; bounded, oldest dropped first.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ConfigError, parseConfig } from '../config/load.js';
import { deliveryEventsJsonSchemaText, webhookBodySchema } from '../relay/reporting/event-schema.js';
import { queuedId, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { queueIdOf, startUpstream, type Upstream } from './helpers/upstream.js';
import { type Receiver, startReceiver } from './helpers/webhook-receiver.js';
import { until } from './helpers/wait.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const MIN = 60_000;

async function setup(t: Test, options: { receiver?: Receiver; webhook?: string; spool?: string; upstream?: Upstream; extra?: string } = {}) {
  const receiver = options.receiver ?? (await startReceiver(SECRET));
  const upstream = options.upstream ?? (await startUpstream({ rcpt: (a) => (a.startsWith('busy') ? [450, '4.2.1 Mailbox busy'] : a.startsWith('gone') ? [550, '5.1.1 User unknown'] : undefined) }));
  const spool = options.spool ?? '${SPOOL}';
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: ${spool} }, retry: { minSeconds: 300, maxSeconds: 3600, jitter: 0, maxLifetimeHours: 1 } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
events: { webhook: { url: "${receiver.url}", secret: "\${WEBHOOK_SECRET}"${options.webhook ?? ''} } }
${options.extra ?? ''}`,
    { WEBHOOK_SECRET: SECRET },
    { manualScheduler: true },
  );
  t.teardown(async () => {
    await relay.close();
    if (!options.receiver) await receiver.close();
    if (!options.upstream) await upstream.close();
  });
  return { relay, receiver, upstream };
}

const eventsOf = (receiver: Receiver, id: string) => receiver.events.filter((e) => e.queueId === id);
const metric = async (relay: TestRelay, name: string) => {
  const text = await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();
  return Number(new RegExp(`^${name}\\{webhook="platform"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
};

t.test('the JSON Schema of the events is committed as relay/reporting/delivery-events.schema.json (npm run schema)', async (t) => {
  t.equal(fs.readFileSync('relay/reporting/delivery-events.schema.json', 'utf8'), deliveryEventsJsonSchemaText());
});

t.test('queue mode: accepted, then delivered, per recipient, in order, signed, with the upstream reply; as the schema says', async (t) => {
  const { relay, receiver } = await setup(t);
  const raw = 'From: <app@acme.test>\r\nTo: a@example.com\r\nMessage-ID: <reset-42@app.acme.test>\r\nSubject: Reset\r\n\r\nHello.\r\n';
  const id = queuedId((await sendThrough(relay.port, { from: 'app@acme.test', to: ['a@example.com', 'b@example.com'], raw })).response);
  t.ok(await until(() => eventsOf(receiver, id).length === 2), 'accepted arrives before any attempt');
  await relay.relay.scheduler.runDue(Date.now());
  t.ok(await until(() => eventsOf(receiver, id).length === 4));
  const events = eventsOf(receiver, id);
  t.same(
    events.map((e) => [e.type, e.recipient, e.attempt]),
    [
      ['accepted', 'a@example.com', 0],
      ['accepted', 'b@example.com', 0],
      ['delivered', 'a@example.com', 1],
      ['delivered', 'b@example.com', 1],
    ],
  );
  t.match(events[2], {
    queueId: id,
    messageId: '<reset-42@app.acme.test>',
    tenant: null,
    mode: 'queue',
    from: 'app@acme.test',
    upstream: 'smarthost',
    reply: /^250 2\.0\.0 Ok: delivered via smarthost/,
    upstreamReply: { code: 250, enhanced: '2.0.0', text: `Ok: queued as ${queueIdOf(0)}`, queueId: queueIdOf(0) },
    nextAttemptAt: null,
    dsn: false,
  });
  t.ok(receiver.requests.every((r) => r.verified), 'every request carries a valid signature');
  const validate = new Ajv2020({ strict: false }).compile(JSON.parse(deliveryEventsJsonSchemaText()) as object);
  for (const r of receiver.requests) {
    const body: unknown = JSON.parse(r.body);
    t.ok(webhookBodySchema.safeParse(body).success && validate(body), 'the body is what the JSON Schema says');
  }
  t.equal(new Set(events.map((e) => e.id)).size, 4, 'each event has its own id');
});

t.test('deferred (with the next attempt), bounced, then delivered and expired: each as it happens', async (t) => {
  const { relay, receiver } = await setup(t);
  const first = queuedId((await sendThrough(relay.port, { from: 'app@acme.test', to: ['busy@example.com', 'gone@example.com'] })).response);
  const now = Date.now();
  await relay.relay.scheduler.runDue(now);
  t.ok(await until(() => eventsOf(receiver, first).length === 4));
  t.match(eventsOf(receiver, first).slice(2), [
    { type: 'deferred', recipient: 'busy@example.com', upstreamReply: { code: 450, enhanced: '4.2.1', text: 'Mailbox busy' }, nextAttemptAt: new Date(now + 5 * MIN).toISOString() },
    { type: 'bounced', recipient: 'gone@example.com', reply: /^550 5\.1\.1 /, upstreamReply: { code: 550 } },
  ]);
  // Past the message's lifetime (1 h here), the next failure is final.
  await relay.relay.scheduler.runDue(now + 61 * MIN);
  t.ok(await until(() => eventsOf(receiver, first).length === 5));
  t.match(eventsOf(receiver, first)[4], { type: 'expired', recipient: 'busy@example.com', attempt: 2, nextAttemptAt: null });
});

t.test('the webhook down: events wait on disk and arrive in order once it is back; a relay restart meanwhile loses none', async (t) => {
  const receiver = await startReceiver(SECRET);
  const upstream = await startUpstream();
  const spool = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-events-'));
  t.teardown(async () => {
    await receiver.close();
    await upstream.close();
    fs.rmSync(spool, { recursive: true, force: true });
  });
  await receiver.stop();
  const first = await setup(t, { receiver, upstream, spool });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(queuedId((await sendThrough(first.relay.port, { from: 'app@acme.test', to: `r${i}@example.com` })).response));
  await first.relay.relay.scheduler.runDue(Date.now());
  t.equal(upstream.received.length, 5, 'mail went on while the webhook was down');
  t.ok(await until(() => first.relay.logs.some((l) => l.event === 'webhook-failing')), 'the failure is logged');
  t.equal(await metric(first.relay, 'tenant_relay_webhook_backlog_events'), 10, 'ten events wait');
  await first.relay.close();

  await receiver.restart();
  const second = await setup(t, { receiver, upstream, spool });
  t.ok(await until(() => ids.every((id) => eventsOf(receiver, id).length === 2)), 'every event arrived after the restart');
  for (const id of ids) t.same(eventsOf(receiver, id).map((e) => e.type), ['accepted', 'delivered'], `in order for ${id}`);
  t.equal(await metric(second.relay, 'tenant_relay_webhook_backlog_events'), 0);
});

t.test('a webhook that hangs never slows mail: one request holds it, the rest wait on disk', async (t) => {
  const { relay, receiver, upstream } = await setup(t, { webhook: ', timeoutSeconds: 30' });
  receiver.mode = 'hang';
  for (let i = 0; i < 20; i++) await sendThrough(relay.port, { from: 'app@acme.test', to: `r${i}@example.com` });
  for (let round = 0; round < 10 && relay.relay.scheduler.size > 0; round++) await relay.relay.scheduler.runDue(Date.now());
  t.equal(upstream.received.length, 20, 'twenty messages accepted and delivered while the webhook hangs');
  t.equal(receiver.hanging, 1, 'one request at a time holds the webhook');
  t.equal(await metric(relay, 'tenant_relay_webhook_backlog_events'), 40);
});

t.test('a refused request is sent again, the same events under the same webhook-id, and counted as retried', async (t) => {
  const { relay, receiver } = await setup(t);
  receiver.mode = 'fail';
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'x@example.com' });
  t.ok(await until(() => receiver.requests.length >= 2, 5000), 'sent again after a backoff');
  const [a, b] = receiver.requests;
  t.equal(a?.body, b?.body, 'the same events');
  t.equal(a?.headers['webhook-id'], b?.headers['webhook-id'], 'the same webhook-id');
  t.not(a?.headers['webhook-signature'], undefined);
  t.ok((await metric(relay, 'tenant_relay_webhook_events_retried_total')) >= 1, 'counted as retried');
  receiver.mode = 'ok';
  t.ok(await until(() => receiver.events.length === 1, 5000), 'taken once the receiver answers 2xx');
});

t.test('past maxBacklogEvents the oldest events go first, counted and logged', async (t) => {
  const { relay, receiver } = await setup(t, { webhook: ', maxBacklogEvents: 10' });
  receiver.mode = 'fail';
  const ids: string[] = [];
  for (let i = 0; i < 15; i++) ids.push(queuedId((await sendThrough(relay.port, { from: 'app@acme.test', to: `r${i}@example.com` })).response));
  t.ok((await metric(relay, 'tenant_relay_webhook_events_dropped_total')) >= 5, 'dropped and counted');
  t.ok(await metric(relay, 'tenant_relay_webhook_backlog_events') <= 10, 'the backlog stays under the cap');
  t.match(relay.logs.find((l) => l.event === 'webhook-events-dropped'), { webhook: 'platform', dropped: Number });
  receiver.mode = 'ok';
  t.ok(await until(() => eventsOf(receiver, ids.at(-1) ?? '').length === 1, 20_000), 'the newest arrives');
  t.equal(eventsOf(receiver, ids[0] ?? '').length, 0, 'the oldest was dropped');
});

t.test("a tenant's own webhook hears its tenant's events only; the platform's hears all", async (t) => {
  const acme = await startReceiver(SECRET);
  t.teardown(() => acme.close());
  const { relay, receiver } = await setup(t, {
    extra: `tenants:\n  - { id: acme, match: { domains: [acme.test] }, events: { webhook: { url: "${acme.url}", secret: "${SECRET}", types: [delivered] } } }\n`,
  });
  const mine = queuedId((await sendThrough(relay.port, { from: 'app@acme.test', to: 'x@example.com' })).response);
  const other = queuedId((await sendThrough(relay.port, { from: 'app@globex.test', to: 'y@example.com' })).response);
  await relay.relay.scheduler.runDue(Date.now());
  t.ok(await until(() => eventsOf(receiver, mine).length === 2 && eventsOf(receiver, other).length === 2 && acme.events.length === 1));
  t.match(acme.events, [{ type: 'delivered', queueId: mine, tenant: 'acme' }]);
});

t.test('a webhook signing key that is not Standard Webhooks-shaped is refused at load, with file:line', async (t) => {
  const load = (secret: string, url = 'https://platform.example/events') => {
    try {
      parseConfig(`smarthost: { host: 127.0.0.1, tls: none }\nevents:\n  webhook:\n    url: ${url}\n    secret: "${secret}"\n`, 'relay.yaml', {});
      return 'loaded';
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.message;
    }
  };
  t.match(load('hunter2'), /relay\.yaml:5:\d+: events\.webhook\.secret: must be whsec_ followed by base64/);
  t.match(load(`whsec_${randomBytes(8).toString('base64')}`), /events\.webhook\.secret: is 8 bytes after whsec_; Standard Webhooks keys are 24 to 64 random bytes/);
  t.match(load(SECRET, 'http://platform.example/events'), /events\.webhook\.url: must be https:\/\//);
  t.equal(load(SECRET), 'loaded');
  t.match(load(SECRET.replace('whsec_', '')), /must be whsec_/);
});

t.test('pass-through: one event per recipient with what the upstream said while the client waited', async (t) => {
  const receiver = await startReceiver(SECRET);
  const upstream = await startUpstream();
  t.teardown(async () => {
    await receiver.close();
    await upstream.close();
  });
  const relay = await startTestRelay(`smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\nevents: { webhook: { url: "${receiver.url}", secret: "${SECRET}" } }\n`);
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'x@example.com' });
  t.ok(await until(() => receiver.events.length === 1));
  t.match(receiver.events[0], { type: 'delivered', mode: 'passthrough', attempt: 1, upstreamReply: { queueId: queueIdOf(0) } });
});
