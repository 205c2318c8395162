// Per-tenant sending rates: pass-through refuses past the rate with 451 4.7.1 (the app retries); the
// queue accepts and spreads the deliveries out instead.
import t from 'tap';
import { MemoryLimiter } from '../relay/limits/memory.js';
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
  t.match(await replyOf(sendThrough(relay.port, { from: 'a@busy.test', to: 'x@example.com' })), /^451 4\.7\.1 Tenant busy is over its sending rate; please try again in (59|60) seconds/);
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
  t.equal(upstream.received.length - before, 2, "a minute's worth at once");
  await scheduler.runDue(now + 30_000);
  t.equal(upstream.received.length - before, 2, 'nothing more while those two are in the last 60 seconds');
  await scheduler.runDue(now + 60_000);
  t.equal(upstream.received.length - before, 4, 'two more once they have left it');
  await scheduler.runDue(now + 90_000);
  t.equal(upstream.received.length - before, 4);
  await scheduler.runDue(now + 120_000);
  t.equal(upstream.received.length - before, 5);
});

t.test('queue: past messagesPerDay the rest waits until the first sends leave the sliding 24 hours', async (t) => {
  const relay = await startTestRelay(yaml('queue', 'messagesPerDay: 3'), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const before = upstream.received.length;
  for (let i = 0; i < 5; i++) await sendThrough(relay.port, { from: `d${i}@busy.test`, to: 'x@example.com' });
  const now = Date.now();
  await relay.relay.scheduler.runDue(now);
  t.equal(upstream.received.length - before, 3);
  await relay.relay.scheduler.runDue(now + 60_000);
  await relay.relay.scheduler.runDue(now + 23 * 3_600_000);
  t.equal(upstream.received.length - before, 3, 'still within 24 hours of the first three');
  await relay.relay.scheduler.runDue(now + 24 * 3_600_000 + 5 * 60_000);
  t.equal(upstream.received.length - before, 5);
});

t.test('queue: an upstream mailbox limit is shared by every tenant sending through it', async (t) => {
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none, limits: { messagesPerMinute: 2 } }
tenants:
  - { id: one, match: { domains: [one.test] } }
  - { id: two, match: { domains: [two.test] } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  const before = upstream.received.length;
  for (let i = 0; i < 3; i++) {
    await sendThrough(relay.port, { from: `a${i}@one.test`, to: 'x@example.com' });
    await sendThrough(relay.port, { from: `b${i}@two.test`, to: 'x@example.com' });
  }
  const now = Date.now();
  await relay.relay.scheduler.runDue(now);
  t.equal(upstream.received.length - before, 2, 'two for both tenants together');
  await relay.relay.scheduler.runDue(now + 120_000);
  t.equal(upstream.received.length - before, 4);
});

t.test('queue: recipientsPerDay counts recipients, and only the ones the upstream took', async (t) => {
  const refusing = await startUpstream({ rcpt: (a) => (a.startsWith('gone') ? [550, '5.1.1 no such user'] : undefined) });
  t.teardown(() => refusing.close());
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${refusing.port}, tls: none }
tenants:
  - { id: m365, match: { domains: [m365.test] }, limits: { recipientsPerDay: 4 } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'a@m365.test', to: ['r1@example.com', 'gone1@example.com', 'gone2@example.com'] });
  await sendThrough(relay.port, { from: 'b@m365.test', to: ['r2@example.com', 'r3@example.com'] });
  await sendThrough(relay.port, { from: 'c@m365.test', to: ['r4@example.com', 'r5@example.com'] });
  const now = Date.now();
  // Not the DSN for the two refused recipients: it comes from the null sender, outside the tenant's budget.
  const tenantMail = () => refusing.received.filter((m) => m.mailFrom !== '').map((m) => m.rcptTo.length);
  await relay.relay.scheduler.runDue(now);
  t.same(tenantMail(), [1], 'the first message; the others wait for what it did not send');
  await relay.relay.scheduler.runDue(now + 10_000);
  // 1 sent (2 refused, given back) + 2 = 3 of 4: the last message, of 2 recipients, waits a day.
  t.same(tenantMail(), [1, 2]);
  await relay.relay.scheduler.runDue(now + 3_600_000);
  t.same(tenantMail(), [1, 2]);
  await relay.relay.scheduler.runDue(now + 24 * 3_600_000 + 5 * 60_000);
  t.same(tenantMail(), [1, 2, 2]);
});

t.test('a worker among N without a shared store counts 1/N of each limit, never less than one message', async (t) => {
  const budget = { key: 'tenant:acme', limits: { messagesPerMinute: 10, messagesPerDay: 3 } };
  const worker = new MemoryLimiter(1 / 2);
  const now = Date.UTC(2026, 11, 2, 9);
  const taken = [];
  for (let i = 0; i < 4; i++) {
    const r = worker.reserveNow([budget], 1, now);
    if (r.ok) r.settle(1);
    taken.push(r.ok);
  }
  t.same(taken, [true, false, false, false], 'half of 3 a day is 1 (floored), not 1.5');
  const alone = new MemoryLimiter();
  t.same([0, 1, 2, 3].map(() => alone.reserveNow([budget], 1, now).ok), [true, true, true, false], 'alone: the whole budget');
  const eighth = new MemoryLimiter(1 / 8);
  t.ok(eighth.reserveNow([{ key: 'tenant:small', limits: { messagesPerDay: 5 } }], 1, now).ok, 'a day limit of 5 over 8 workers still lets each send one');
});

t.test('pass-through: recipientsPerDay counts every recipient sent, though only one is known at MAIL FROM', async (t) => {
  const relay = await startTestRelay(yaml('passthrough', 'recipientsPerDay: 3'));
  t.teardown(() => relay.close());
  t.match((await sendThrough(relay.port, { from: 'a@busy.test', to: ['x@example.com', 'y@example.com', 'z@example.com'] })).response, /^250 /);
  t.match(await replyOf(sendThrough(relay.port, { from: 'a@busy.test', to: 'w@example.com' })), /^451 4\.7\.1 /, "the three sent used up the day's recipients");
});
