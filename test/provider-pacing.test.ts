// A provider that asks to slow down (Gmail's 421 4.7.28, Microsoft's throttling, SES's rate) or says the
// mailbox's quota is used up: the mailbox's mail is held through a cool-down, then sent at one connection
// more each minute; nothing bounces, and the log, the metrics and the queue say why it waits. In a fleet on
// one Redis, a cool-down one relay heard holds every relay's mail to that mailbox.
import t, { type Test } from 'tap';
import { queuedId, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { needRedis, startRedis } from './helpers/redis.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const MIN = 60_000;

/** A queue-mode relay driven by hand, tenant acme's upstream as given, retries a minute apart. */
async function queueRelay(t: Test, upstream: string): Promise<TestRelay> {
  const relay = await startTestRelay(
    `
delivery: { mode: queue, spool: { path: \${SPOOL} }, retry: { minSeconds: 60, maxSeconds: 600, jitter: 0 } }
smarthost: { host: 127.0.0.1, port: 9, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test] }
    upstream: { ${upstream} }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  return relay;
}

t.test('a throttled mailbox: held through its cool-down, then back to full pace one connection a minute; nothing bounced', async (t) => {
  let throttling = true;
  const upstream = await startUpstream({ data: () => (throttling ? [421, '4.7.28 [203.0.113.5] Gmail has detected an unusual rate of unsolicited mail originating from your IP address'] : undefined) });
  t.teardown(() => upstream.close());
  const relay = await queueRelay(t, `host: 127.0.0.1, port: ${upstream.port}, tls: none, maxConnections: 3`);
  const { scheduler } = relay.relay;
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push(queuedId((await sendThrough(relay.port, { from: 'app@acme.test', to: `r${i}@example.com` })).response));
  const now = Date.now();

  await scheduler.runDue(now);
  t.equal(upstream.received.length, 0, 'the provider took none: it asked to slow down');
  t.match(relay.logs.filter((l) => l.event === 'provider-pacing'), [{ level: 40, upstream: 'acme', signal: 'throttle', inARow: 1, msg: /asks the relay to slow down \(421 4\.7\.28 .*\); paced until/ }], 'said once, for the mailbox');
  const metrics = await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();
  t.match(metrics, /tenant_relay_provider_pacing_total\{upstream="acme",signal="throttle"\} 1/);

  await scheduler.runDue(now + 0.5 * MIN);
  t.equal(upstream.received.length, 0, 'nothing during the cool-down');
  const held = ids.map((id) => scheduler.holds.get(id)).filter(Boolean);
  t.ok(held.length >= 1, 'the message not yet tried is held, with the reason (queue list, trace, a held delivery event)');
  t.match(held[0], { reason: /asks the relay to slow down/ });

  throttling = false;
  await scheduler.runDue(now + 1.05 * MIN);
  t.equal(upstream.received.length, 1, 'after it: one connection');
  await scheduler.runDue(now + 2.05 * MIN);
  t.equal(upstream.received.length, 3, 'a minute on: two');
  await scheduler.runDue(now + 3.05 * MIN);
  t.equal(upstream.received.length, 4, 'all delivered');
  t.notOk(relay.logs.some((l) => l.event === 'bounced' || l.event === 'dsn-queued'), 'nothing bounced');
  t.equal(scheduler.size, 0);
});

t.test("a quota reply (Gmail's daily limit) holds the mailbox five minutes, then its mail goes; a provider profile sets the documented limits", async (t) => {
  let overLimit = true;
  const upstream = await startUpstream({ data: () => (overLimit ? [550, '5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to https://support.google.com/a/answer/166852'] : undefined) });
  t.teardown(() => upstream.close());
  const relay = await queueRelay(t, `host: 127.0.0.1, port: ${upstream.port}, tls: none, provider: google-workspace, limits: { messagesPerDay: 1500 }`);
  const u = relay.relay.config().tenants[0]?.upstream;
  t.same(u?.kind === 'smtp' ? u.limits : undefined, { messagesPerDay: 1500, recipientsPerDay: 10_000 }, "the profile's limits, overridden key by key");
  const { scheduler } = relay.relay;
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'a@example.com' });
  const now = Date.now();
  await scheduler.runDue(now);
  t.match(relay.logs.find((l) => l.event === 'provider-pacing'), { signal: 'quota', msg: /quota is used up/ });
  overLimit = false;
  await scheduler.runDue(now + 2 * MIN);
  t.equal(upstream.received.length, 0, 'not before the cool-down ends, though its retry was due');
  await scheduler.runDue(now + 5.05 * MIN);
  t.equal(upstream.received.length, 1, 'delivered after it');
  t.notOk(relay.logs.some((l) => l.event === 'bounced'), 'never bounced');
});

t.test("a fleet on one Redis: the cool-down one relay heard holds the others' mail to that mailbox too; a forged one holds nothing", needRedis, async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  let throttling = true;
  let tries = 0;
  const throttled = await startUpstream({
    data: () => {
      tries++;
      return throttling ? [421, '4.7.28 [203.0.113.5] Our system has detected an unusual rate of unsolicited mail'] : undefined;
    },
  });
  const other = await startUpstream();
  t.teardown(() => Promise.all([throttled.close(), other.close()]));
  const fleet: TestRelay[] = [];
  for (let i = 0; i < 3; i++) {
    const relay = await startTestRelay(
      `
delivery: { mode: queue, spool: { path: \${SPOOL} }, retry: { minSeconds: 60, maxSeconds: 600, jitter: 0 } }
smarthost: { host: 127.0.0.1, port: 9, tls: none }
limits: { store: { redis: { url: "${redis.url}", timeoutMilliseconds: 500, signingKey: "shared-signing-key-of-the-test-fleet-0123" } } }
tenants:
  - { id: acme, match: { domains: [acme.test] }, upstream: { host: 127.0.0.1, port: ${throttled.port}, tls: none } }
  - { id: beta, match: { domains: [beta.test] }, upstream: { host: 127.0.0.1, port: ${other.port}, tls: none } }
`,
      {},
      { manualScheduler: true },
    );
    t.teardown(() => relay.close());
    fleet.push(relay);
    for (const from of ['app@acme.test', 'app@beta.test']) await sendThrough(relay.port, { from, to: 'r@example.com' });
  }
  // Written by someone who can reach Redis but has no signing key: a cool-down for beta's mailbox.
  const forged = JSON.stringify({ m: 'mailbox:127.0.0.1/-/beta', n: 'beta', s: 'quota', l: 0, u: Date.now() + 5 * MIN, r: 'forged' });
  await redis.client.zadd('tenant-relay:pacing', Date.now() + 5 * MIN, `${'A'.repeat(43)}.${forged}`);
  const [a, b, c] = fleet as [TestRelay, TestRelay, TestRelay];
  const now = Date.now();

  await a.relay.scheduler.runDue(now);
  t.equal(tries, 1, 'the provider said "slow down" to one relay');
  await until(() => [b, c].every((r) => r.logs.some((l) => l.event === 'provider-pacing' && l.heardBy === 'another relay')), 10_000);
  t.match(b.logs.find((l) => l.event === 'provider-pacing'), { upstream: 'acme', signal: 'throttle', inARow: 1, msg: /asks the relay to slow down \(421 4\.7\.28 / });
  t.ok([b, c].every((r) => r.logs.some((l) => l.event === 'pacing-entry-ignored')), 'the forged entry is ignored, and said');
  await b.relay.scheduler.runDue(now + 1000);
  await c.relay.scheduler.runDue(now + 1000);
  t.equal(tries, 1, 'the other relays did not try the throttled mailbox during the cool-down');
  t.equal(other.received.length, 3, "every relay's mail to another mailbox went at once (the forged cool-down held nothing)");
  const metrics = await (await fetch(`http://127.0.0.1:${b.relay.opsPort}/metrics`)).text();
  t.notMatch(metrics, /tenant_relay_provider_pacing_total\{upstream="acme"/, 'counted where the reply was heard, once for the fleet');

  throttling = false;
  for (const r of fleet) await r.relay.scheduler.runDue(now + 1.05 * MIN);
  t.equal(throttled.received.length, 3, 'after the cool-down, each relay sends again (one connection each, then more)');
  t.notOk(fleet.some((r) => r.logs.some((l) => l.event === 'bounced')), 'nothing bounced');
});

t.test('a message to more recipients than the server takes in one (Microsoft 365: 500) goes as several transactions, each recipient once', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await queueRelay(t, `host: 127.0.0.1, port: ${upstream.port}, tls: none, provider: microsoft365, limits: { recipientsPerMessage: 3 }`);
  const profile = await queueRelay(t, `host: 127.0.0.1, port: ${upstream.port}, tls: none, provider: microsoft365`);
  const u = profile.relay.config().tenants[0]?.upstream;
  t.equal(u?.kind === 'smtp' ? u.recipientsPerMessage : undefined, 500, "the profile's 500");
  t.notOk(u?.kind === 'smtp' && u.limits && 'recipientsPerMessage' in u.limits, 'not a budget: nothing counts it');
  const to = Array.from({ length: 7 }, (_, i) => `r${i}@example.com`);
  await sendThrough(relay.port, { from: 'app@acme.test', to });
  await relay.relay.scheduler.runDue(Date.now());
  t.same(
    upstream.received.map((r) => r.rcptTo),
    [to.slice(0, 3), to.slice(3, 6), to.slice(6)],
  );
  t.equal(relay.relay.scheduler.size, 0, 'delivered to all');
});
