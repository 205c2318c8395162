// A provider that asks to slow down (Gmail's 421 4.7.28, Microsoft's throttling, SES's rate) or says the
// mailbox's quota is used up: the mailbox's mail is held through a cool-down, then sent at one connection
// more each minute; nothing bounces, and the log, the metrics and the queue say why it waits.
import t, { type Test } from 'tap';
import { queuedId, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

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
