// What the relays read back from Redis is checked before it steers anything: anyone who can write to the
// store (a tenant app on the network, a bug) must not be able to hold a tenant's mail for ever, make the
// relay spin, shrink every relay's share of a budget, forge a send-test outcome, or flood the tenant
// cache. A real redis-server, values written into it the way an attacker would.
import t, { type Test } from 'tap';
import { startPlatform } from './helpers/platform.js';
import { sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { needRedis, startRedis, type TestRedis } from './helpers/redis.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const KEY = 'shared-signing-key-of-the-test-fleet-0123';

async function setup(t: Test, options: { mode?: 'queue' | 'passthrough'; manual?: boolean; extra?: string; tenantLimits?: string } = {}): Promise<{ redis: TestRedis; upstream: Upstream; relay: TestRelay }> {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `delivery: { mode: ${options.mode ?? 'queue'}, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
limits: { store: { redis: { url: "${redis.url}", timeoutMilliseconds: 200, signingKey: "${KEY}" } } }
tenants:
  - { id: acme, match: { domains: [acme.test] }, limits: { ${options.tenantLimits ?? 'messagesPerMinute: 5'} } }
  - { id: globex, match: { domains: [globex.test] }, limits: { messagesPerMinute: 5 } }
${options.extra ?? ''}`,
    {},
    { manualScheduler: options.manual ?? false },
  );
  t.teardown(() => relay.close());
  return { redis, upstream, relay };
}

const commands = async (redis: TestRedis) => Number(/total_commands_processed:(\d+)/.exec(await redis.client.info('stats'))?.[1]);

t.test('a limit key poisoned with a time far in the future is reset, not obeyed: no busy loop, the mail goes, other tenants unaffected', needRedis, async (t) => {
  const { redis, upstream, relay } = await setup(t);
  await redis.client.hset('tenant-relay:limit:tenant:acme', 'tat', '1e300', 'mt', 'not-a-number', 'first', '1e300');
  const before = await commands(redis);
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'a@example.com' });
  await sendThrough(relay.port, { from: 'app@globex.test', to: 'b@example.com' });
  t.ok(await until(() => upstream.received.length === 2, 5000), 'both delivered');
  await new Promise((r) => setTimeout(r, 3000));
  const used = (await commands(redis)) - before;
  t.ok(used < 60, `${used} Redis commands in ~3 s (a busy loop makes hundreds of thousands)`);
  t.match(relay.logs.find((l) => l.event === 'limit-store-values-reset'), { budgets: ['tenant:acme'] });
  t.equal(await redis.client.hget('tenant-relay:limit:tenant:acme', 'first') !== '1e300', true, 'the budget was started again');
});

t.test('a hold that came from a bad value ends soon after the value is fixed', needRedis, async (t) => {
  const { redis, upstream, relay } = await setup(t, { manual: true, tenantLimits: 'messagesPerDay: 100' });
  const step = Math.floor(Date.now() / 300_000);
  // Numbers in range (they could be real usage): a day's worth spent. The relay holds the mail.
  await redis.client.hset('tenant-relay:limit:tenant:acme', 'first', String(step), 'mt', '100', 'rt', '100', `m:${step}`, '100', `r:${step}`, '100');
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'a@example.com' });
  const now = Date.now();
  await relay.relay.scheduler.runDue(now);
  t.equal(upstream.received.length, 0, 'held');
  t.equal(relay.relay.scheduler.inFlight + relay.relay.scheduler.size, 1, 'still queued');
  await redis.client.del('tenant-relay:limit:tenant:acme');
  await relay.relay.scheduler.runDue(now + 61_000);
  t.equal(upstream.received.length, 1, 'asked again within a minute, and sent');
});

t.test('a members set padded with entries nobody signed does not shrink the local share', needRedis, async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const now = Date.now();
  const padding: (string | number)[] = [];
  for (let i = 0; i < 1000; i++) padding.push(now + 20_000, `attacker-${i}`);
  await redis.client.zadd('tenant-relay:members', ...padding);
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
limits: { store: { redis: { url: "${redis.url}", timeoutMilliseconds: 200, signingKey: "${KEY}" } } }
tenants:
  - { id: acme, match: { domains: [acme.test] }, limits: { messagesPerMinute: 10 } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  // Its first heartbeat: its own entry beside the padded ones (whatever becomes of those).
  const ownEntry = async () => (await redis.client.zrange('tenant-relay:members', '0', '-1')).some((m) => !m.startsWith('attacker-'));
  t.ok(await until(ownEntry, 5000), 'the relay wrote its heartbeat');
  await redis.kill();
  for (let i = 0; i < 4; i++) await sendThrough(relay.port, { from: 'app@acme.test', to: `r${i}@example.com` });
  const then = Date.now();
  await relay.relay.scheduler.runDue(then);
  t.match(relay.logs.find((l) => l.event === 'limits-local'), { relaysSeen: 1, share: 1 }, 'the relay counts itself, not the padding');
  // Alone, it first waits out a window it cannot know the fleet's part of; then its share is the whole budget.
  await relay.relay.scheduler.runDue(then + 61_000);
  t.equal(upstream.received.length, 4, 'its local share is the whole budget, not 1/1001 of it');
});

t.test('a send-test outcome in Redis that no relay signed is not believed', needRedis, async (t) => {
  const { redis, relay } = await setup(t, { mode: 'passthrough' });
  const token = 'forged-token-0123456789';
  await redis.client.set(`tenant-relay:send-test:${token}`, JSON.stringify({ tenant: 'acme', upstream: 'acme', recipients: [{ rcpt: 'x@example.com', status: 'sent', reply: '250 forged' }], headers: '', final: true }));
  const res = await fetch(`http://127.0.0.1:${relay.relay.opsPort}/send-test/${token}`);
  t.equal(res.status, 404);
  t.match(relay.logs.find((l) => l.event === 'send-test-outcome-unsigned'), { token });
});

t.test('a flood on the invalidation channel is taken at a bounded rate and logged once a second, not once a message', needRedis, async (t) => {
  const platform = await startPlatform(() => ({ status: 404 }));
  t.teardown(() => platform.close());
  const { redis, upstream, relay } = await setup(t, { mode: 'passthrough', extra: `tenantSource: { url: "${platform.url}", invalidationChannel: "tenant-relay:tenants", upstreamHosts: { allow: [127.0.0.1/32], ports: [] } }` });
  const subscribers = async () => Number(((await redis.client.pubsub('NUMSUB', 'tenant-relay:tenants')) as [string, number])[1]);
  t.ok(await until(async () => (await subscribers()) > 0, 5000), 'the relay subscribed');
  const pipeline = redis.client.pipeline();
  for (let i = 0; i < 5000; i++) pipeline.publish('tenant-relay:tenants', `tenant-${i}`);
  await pipeline.exec();
  t.ok(await until(() => relay.logs.some((l) => l.event === 'tenant-invalidated' && Number(l.overRate) > 0), 5000), 'the flood was noticed');
  const lines = relay.logs.filter((l) => l.event === 'tenant-invalidated');
  t.ok(lines.length <= 5, `${lines.length} log lines for 5,000 messages`);
  t.match(lines.find((l) => Number(l.overRate) > 0), { messages: Number, overRate: Number });
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'x@example.com' });
  t.equal(upstream.received.length, 1, 'mail flows');
});
