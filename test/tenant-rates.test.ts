// Per-tenant sending rates: pass-through refuses past the rate with 451 4.7.1 (the app retries); the
// queue accepts and spreads the deliveries out instead.
import t from 'tap';
import { sendThrough, replyOf, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const upstream = await startUpstream();
t.teardown(() => upstream.close());

const yaml = (mode: string, limits: string) => `
delivery: { mode: ${mode}, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
tenants:
  - id: busy
    match: { domains: [busy.test] }
    limits: { ${limits} }
  - id: calm
    match: { domains: [calm.test] }
`;

t.test('pass-through: past messagesPerMinute the tenant gets 451 4.7.1; other tenants are not affected', async (t) => {
  const relay = await startTestRelay(yaml('passthrough', 'messagesPerMinute: 2'));
  t.teardown(() => relay.close());
  for (let i = 0; i < 2; i++) t.match((await sendThrough(relay.port, { from: 'a@busy.test', to: 'x@example.com' })).response, /^250 /);
  t.match(await replyOf(sendThrough(relay.port, { from: 'a@busy.test', to: 'x@example.com' })), /^451 4\.7\.1 Tenant busy is over its sending rate/);
  t.match((await sendThrough(relay.port, { from: 'a@calm.test', to: 'x@example.com' })).response, /^250 /);
});

t.test('queue: past messagesPerMinute the mail is accepted and delivered at the rate', async (t) => {
  const relay = await startTestRelay(yaml('queue', 'messagesPerMinute: 2'), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const before = upstream.received.length;
  for (let i = 0; i < 5; i++) t.match((await sendThrough(relay.port, { from: `n${i}@busy.test`, to: 'x@example.com' })).response, /^250 .*queued/);
  const now = Date.now();
  const { scheduler } = relay.relay;
  await scheduler.runDue(now);
  t.equal(upstream.received.length - before, 2, 'a burst of one minute\'s worth');
  await scheduler.runDue(now + 10_000);
  t.equal(upstream.received.length - before, 2, 'then nothing until a token refills');
  await scheduler.runDue(now + 30_000);
  t.equal(upstream.received.length - before, 3, 'one every 30 seconds');
  await scheduler.runDue(now + 60_000);
  await scheduler.runDue(now + 90_000);
  t.equal(upstream.received.length - before, 5);
});

t.test('queue: past messagesPerDay the rest waits for the next UTC day', async (t) => {
  const relay = await startTestRelay(yaml('queue', 'messagesPerDay: 3'), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const before = upstream.received.length;
  for (let i = 0; i < 5; i++) await sendThrough(relay.port, { from: `d${i}@busy.test`, to: 'x@example.com' });
  const now = Date.now();
  await relay.relay.scheduler.runDue(now);
  t.equal(upstream.received.length - before, 3);
  await relay.relay.scheduler.runDue(now + 60_000);
  t.equal(upstream.received.length - before, 3);
  const tomorrow = new Date(now);
  await relay.relay.scheduler.runDue(Date.UTC(tomorrow.getUTCFullYear(), tomorrow.getUTCMonth(), tomorrow.getUTCDate() + 1) + 1);
  t.equal(upstream.received.length - before, 5);
});
