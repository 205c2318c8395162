// Limits shared through a real redis-server: several relays draw on one budget per tenant (and per
// upstream mailbox); the queue holds what does not fit and delivers it later, pass-through says how long
// to wait; counts survive a restart; only what was sent counts. Redis killed or frozen: mail keeps
// flowing on local limits, said by a metric and a log line, and shared counting comes back by itself.
// The platform's invalidation channel and send-test outcomes reach every relay.
import t, { type Test } from 'tap';
import { type Platform, startPlatform } from './helpers/platform.js';
import { replyOf, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { needRedis, startRedis, type TestRedis } from './helpers/redis.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const SECOND = 1000;

async function redisFor(t: Test): Promise<TestRedis> {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  return redis;
}

async function upstreamFor(t: Test, options: Parameters<typeof startUpstream>[0] = {}): Promise<Upstream> {
  const upstream = await startUpstream(options);
  t.teardown(() => upstream.close());
  return upstream;
}

async function relayOn(t: Test, redis: TestRedis, upstream: Upstream, tenant: string, options: { mode?: 'queue' | 'passthrough'; extra?: string; spool?: string } = {}): Promise<TestRelay> {
  const mode = options.mode ?? 'queue';
  const relay = await startTestRelay(
    `delivery: { mode: ${mode}, spool: { path: ${options.spool ?? '${SPOOL}'} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
limits: { store: { redis: { url: "${redis.url}", timeoutMilliseconds: 200, signingKey: "shared-signing-key-of-the-test-fleet-0123" } } }
tenants:
  - { id: acme, match: { domains: [acme.test] }, ${tenant} }
${options.extra ?? ''}`,
    {},
    { manualScheduler: mode === 'queue' },
  );
  t.teardown(() => relay.close());
  return relay;
}

const metric = async (relay: TestRelay, name: string) => {
  const text = await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();
  return new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1];
};

t.test('three relays sharing "5 a minute": 5 at once, never more than 5 in any 60 seconds, none lost', needRedis, async (t) => {
  const redis = await redisFor(t);
  const upstream = await upstreamFor(t);
  const relays: TestRelay[] = [];
  for (let i = 0; i < 3; i++) relays.push(await relayOn(t, redis, upstream, 'limits: { messagesPerMinute: 5 }'));
  for (const relay of relays) for (let i = 0; i < 4; i++) await sendThrough(relay.port, { from: 'app@acme.test', to: `r${i}@example.com` });
  const now = Date.now();
  const round = async (at: number) => {
    for (const relay of relays) await relay.relay.scheduler.runDue(at);
  };
  await round(now);
  t.equal(upstream.received.length, 5, 'a minute holds five, however many relays ask');
  await round(now + 30 * SECOND);
  t.equal(upstream.received.length, 5, 'the sixth waits while those five are in the last 60 seconds');
  await round(now + 60 * SECOND);
  t.equal(upstream.received.length, 10, 'five more once they have left it');
  await round(now + 90 * SECOND);
  t.equal(upstream.received.length, 10);
  await round(now + 120 * SECOND);
  t.equal(upstream.received.length, 12, 'all twelve, in the end');
  t.equal(relays.reduce((n, r) => n + r.relay.scheduler.size, 0), 0, 'nothing left in any spool');
});

t.test('pass-through: past the shared budget, 451 4.7.1 with the wait, on whichever relay the app reached', needRedis, async (t) => {
  const redis = await redisFor(t);
  const upstream = await upstreamFor(t);
  const a = await relayOn(t, redis, upstream, 'limits: { messagesPerMinute: 2 }', { mode: 'passthrough' });
  const b = await relayOn(t, redis, upstream, 'limits: { messagesPerMinute: 2 }', { mode: 'passthrough' });
  await sendThrough(a.port, { from: 'app@acme.test', to: 'x@example.com' });
  await sendThrough(b.port, { from: 'app@acme.test', to: 'x@example.com' });
  t.match(await replyOf(sendThrough(a.port, { from: 'app@acme.test', to: 'x@example.com' })), /^451 4\.7\.1 Tenant acme is over its sending rate; please try again in (59|60) seconds/);
  t.equal(upstream.received.length, 2);
});

t.test('a day limit is counted in Redis: a restarted relay still knows what was sent today', needRedis, async (t) => {
  const redis = await redisFor(t);
  const upstream = await upstreamFor(t);
  const first = await relayOn(t, redis, upstream, 'limits: { messagesPerDay: 2 }');
  for (let i = 0; i < 2; i++) await sendThrough(first.port, { from: 'app@acme.test', to: 'x@example.com' });
  await first.relay.scheduler.runDue(Date.now());
  t.equal(upstream.received.length, 2);
  await first.close();
  const second = await relayOn(t, redis, upstream, 'limits: { messagesPerDay: 2 }');
  const id = /queued as (\w+)/.exec((await sendThrough(second.port, { from: 'app@acme.test', to: 'x@example.com' })).response)?.[1] ?? '';
  await second.relay.scheduler.runDue(Date.now());
  t.equal(upstream.received.length, 2, 'the third waits for the day to make room');
  t.match(await second.relay.spool.read(id), { attempts: 0 }, 'held in the spool, not tried');
});

t.test('only what was sent counts: recipients the upstream refused are given back', needRedis, async (t) => {
  const redis = await redisFor(t);
  const upstream = await upstreamFor(t, { rcpt: (a) => (a.startsWith('gone') ? [550, '5.1.1 User unknown'] : undefined) });
  const relay = await relayOn(t, redis, upstream, 'limits: { recipientsPerDay: 2 }');
  await sendThrough(relay.port, { from: 'app@acme.test', to: ['gone1@example.com', 'gone2@example.com'] });
  await relay.relay.scheduler.runDue(Date.now());
  await sendThrough(relay.port, { from: 'app@acme.test', to: ['a@example.com', 'b@example.com'] });
  await relay.relay.scheduler.runDue(Date.now());
  t.same(upstream.received.filter((m) => m.mailFrom !== '').map((m) => m.rcptTo), [['a@example.com', 'b@example.com']], 'the refused two did not use up the day');
});

t.test('Redis killed: mail flows on local limits, said by a metric and a log line; Redis back: shared again', needRedis, async (t) => {
  const redis = await redisFor(t);
  const upstream = await upstreamFor(t);
  const relay = await relayOn(t, redis, upstream, 'limits: { messagesPerMinute: 100 }', { mode: 'passthrough' });
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'x@example.com' });
  t.equal(await metric(relay, 'tenant_relay_limits_shared'), '1');
  await redis.kill();
  for (let i = 0; i < 5; i++) await sendThrough(relay.port, { from: 'app@acme.test', to: `r${i}@example.com` });
  t.equal(upstream.received.length, 6, 'every message went, Redis or not');
  t.equal(await metric(relay, 'tenant_relay_limits_shared'), '0');
  t.ok(Number(await metric(relay, 'tenant_relay_limit_store_errors_total')) >= 1);
  t.match(relay.logs.find((l) => l.event === 'limits-local'), { share: 1, relaysSeen: 1 });
  const ready = await fetch(`http://127.0.0.1:${relay.relay.opsPort}/readyz`);
  t.equal(ready.status, 200, 'readiness stays green');

  await redis.restart();
  // The next message after the reconnection is counted in Redis again. The limits' connection comes
  // back on its own backoff (up to 2 s), after the other roles' may have: a 'redis-connected' line (the
  // start's are there already) says nothing about it, so each message waits for the switch itself.
  const shared = () => relay.logs.some((l) => l.event === 'limits-shared');
  for (let i = 0; i < 40 && !shared(); i++) {
    await sendThrough(relay.port, { from: 'app@acme.test', to: 'again@example.com' });
    await until(shared, 250);
  }
  t.ok(shared(), 'shared again, by itself');
  t.equal(await metric(relay, 'tenant_relay_limits_shared'), '1');
});

t.test('Redis frozen (SIGSTOP): every call has a deadline, and mail goes on', needRedis, async (t) => {
  const redis = await redisFor(t);
  const upstream = await upstreamFor(t);
  const relay = await relayOn(t, redis, upstream, 'limits: { messagesPerMinute: 100 }', { mode: 'passthrough' });
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'x@example.com' });
  redis.pause();
  t.teardown(() => redis.resume());
  const started = Date.now();
  for (let i = 0; i < 3; i++) await sendThrough(relay.port, { from: 'app@acme.test', to: `r${i}@example.com` });
  t.equal(upstream.received.length, 4);
  t.ok(Date.now() - started < 5000, 'one deadline at most, not one per message');
  t.match(relay.logs.find((l) => l.event === 'limits-local'), { reason: /timed? ?out/i });
});

t.test("the platform's invalidation channel drops a cached tenant on every relay at once", needRedis, async (t) => {
  const redis = await redisFor(t);
  const first = await upstreamFor(t);
  const second = await upstreamFor(t);
  let port = first.port;
  const platform: Platform = await startPlatform((by, value) =>
    (by === 'sender' && value.endsWith('@globex.test')) || (by === 'id' && value === 'globex')
      ? { body: { id: 'globex', match: { domains: ['globex.test'] }, upstream: { host: '127.0.0.1', port, tls: 'none' } } }
      : { status: 404 },
  );
  t.teardown(() => platform.close());
  const extra = `tenantSource: { url: "${platform.url}", cacheSeconds: 3600, invalidationChannel: "tenant-relay:tenants", upstreamHosts: { allow: [127.0.0.1/32], ports: [] } }`;
  const relays = [await relayOn(t, redis, first, '', { mode: 'passthrough', extra }), await relayOn(t, redis, first, '', { mode: 'passthrough', extra })];
  for (const relay of relays) await sendThrough(relay.port, { from: 'app@globex.test', to: 'x@example.com' });
  t.equal(first.received.length, 2);
  port = second.port; // the platform moved globex to another server
  // Publish until both relays' subscriptions have heard it (each is up once Redis has counted it).
  for (let i = 0; i < 50 && Number(await redis.client.pubsub('NUMSUB', 'tenant-relay:tenants').then((r) => (r as [string, number])[1])) < 2; i++) await new Promise((r) => setTimeout(r, 20));
  await redis.client.publish('tenant-relay:tenants', 'globex');
  t.ok(await until(() => relays.every((r) => r.logs.some((l) => l.event === 'tenant-invalidated' && (l.tenants as string[]).includes('globex')))), 'every relay heard it');
  for (const relay of relays) await sendThrough(relay.port, { from: 'app@globex.test', to: 'x@example.com' });
  t.equal(second.received.length, 2, 'both relays asked again and used the new record, an hour before the cache would have');
});

t.test('a send-test outcome can be read from any relay that shares the store', needRedis, async (t) => {
  const redis = await redisFor(t);
  const upstream = await upstreamFor(t);
  const a = await relayOn(t, redis, upstream, '', { mode: 'passthrough' });
  const b = await relayOn(t, redis, upstream, '', { mode: 'passthrough' });
  const token = 'fleet-test-0123456789';
  const raw = `From: <app@acme.test>\r\nTo: x@example.com\r\nX-Tenant-Relay-Send-Test: ${token}\r\nSubject: test\r\n\r\nHello.\r\n`;
  await sendThrough(a.port, { from: 'app@acme.test', to: 'x@example.com', raw });
  const read = async () => fetch(`http://127.0.0.1:${b.relay.opsPort}/send-test/${token}`);
  // Until the outcome's write to Redis lands.
  let res = await read();
  for (let i = 0; i < 100 && res.status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 20));
    res = await read();
  }
  t.equal(res.status, 200, 'the other relay answers for it');
  t.match(await res.json(), { upstream: 'smarthost', final: true, recipients: [{ rcpt: 'x@example.com', status: 'sent' }] });
});

t.test('pass-through in Redis: every recipient sent counts against recipientsPerDay, though one is reserved at MAIL FROM', needRedis, async (t) => {
  const redis = await redisFor(t);
  const upstream = await upstreamFor(t);
  const relay = await relayOn(t, redis, upstream, 'limits: { recipientsPerDay: 3 }', { mode: 'passthrough' });
  await sendThrough(relay.port, { from: 'app@acme.test', to: ['x@example.com', 'y@example.com', 'z@example.com'] });
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: 'w@example.com' })), /^451 4\.7\.1 /);
});
