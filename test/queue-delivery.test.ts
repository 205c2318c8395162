// Delivery from the queue, on a fake clock: per-recipient outcomes, backoff, expiry, DSNs, deadlines,
// fairness and fallback, all against real upstream servers that misbehave.
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { retryDelay } from '../relay/queue/backoff.js';
import { makeDkimKey, verifyWithMailauth } from './helpers/dkim.js';
import { sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { refusingPort, startDotFaultServer, startSilentServer, startUpstream, type Upstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const MIN = 60_000;
const smarthost = await startUpstream();
t.teardown(() => smarthost.close());

interface Setup {
  relay: TestRelay;
  tenantUpstream: Upstream;
  /** What the tenant's upstream answers per recipient; undefined accepts. */
  rcpt: Map<string, [number, string]>;
}

async function setup(t: Test, extra = ''): Promise<Setup> {
  const rcpt = new Map<string, [number, string]>();
  const tenantUpstream = await startUpstream({ rcpt: (a) => rcpt.get(a) ?? rcpt.get('*') });
  const relay = await startTestRelay(
    `
delivery: { mode: queue, spool: { path: \${SPOOL} }, retry: { minSeconds: 300, maxSeconds: 3600, jitter: 0, maxLifetimeHours: 120 } }
smarthost: { host: 127.0.0.1, port: ${smarthost.port}, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test] }
    upstream: { host: 127.0.0.1, port: ${tenantUpstream.port}, tls: none, timeoutSeconds: 2, connectTimeoutSeconds: 1 }
    ${extra}
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(async () => {
    await relay.close();
    await tenantUpstream.close();
  });
  return { relay, tenantUpstream, rcpt };
}

const queuedId = (response: string) => /queued as ([a-z0-9]+)/.exec(response)?.[1] ?? '';
const stateOf = (s: Setup, id: string) => s.relay.relay.spool.read(id);

t.test('a queued message is delivered once and leaves the spool', async (t) => {
  const s = await setup(t);
  const id = queuedId((await sendThrough(s.relay.port, { from: 'app@acme.test', to: 'x@example.com' })).response);
  await s.relay.relay.scheduler.runDue();
  t.equal(s.tenantUpstream.received.length, 1);
  t.match(s.tenantUpstream.received[0], { mailFrom: 'app@acme.test', rcptTo: ['x@example.com'] });
  t.equal(await stateOf(s, id), undefined, 'gone from the queue');
  t.match(s.relay.logs.find((l) => l.event === 'delivered'), { id, tenant: 'acme', attempts: 1, recipients: 1, upstream: 'acme', outcomes: [{ rcpt: 'x@example.com', status: 'sent', upstreamReply: /^250 / }] });
  t.same(
    s.relay.logs.filter((l) => l.id === id).map((l) => l.event),
    ['queued', 'delivered'],
    'two lines for a message delivered at once: the attempt is in the delivered line',
  );
});

t.test('overlapping delivery rounds never start the same message twice', async (t) => {
  const s = await setup(t);
  for (let i = 0; i < 5; i++) await sendThrough(s.relay.port, { from: 'app@acme.test', to: `r${i}@example.com` });
  const { scheduler } = s.relay.relay;
  await Promise.all([scheduler.runDue(), scheduler.runDue(), scheduler.runDue()]);
  await scheduler.runDue();
  t.equal(s.tenantUpstream.received.length, 5, 'each message once');
});

t.test('250/450/550 in one message: sent once, the 450 retried, the 550 bounced with a DSN at the end', async (t) => {
  const s = await setup(t);
  s.rcpt.set('later@example.com', [450, '4.2.1 mailbox busy']);
  s.rcpt.set('gone@example.com', [550, '5.1.1 no such user']);
  const id = queuedId((await sendThrough(s.relay.port, { from: 'app@acme.test', to: ['ok@example.com', 'later@example.com', 'gone@example.com'] })).response);
  const now = Date.now();
  await s.relay.relay.scheduler.runDue(now);
  t.same(s.tenantUpstream.received.map((m) => m.rcptTo), [['ok@example.com']]);
  const state = await stateOf(s, id);
  t.match(state, {
    attempts: 1,
    nextAttemptAt: now + 5 * MIN,
    recipients: [
      { address: 'ok@example.com', status: 'sent' },
      { address: 'later@example.com', status: 'pending', reply: /^451 4\.4\.0 .*450 4\.2\.1 mailbox busy/ },
      { address: 'gone@example.com', status: 'failed', reply: /^550 5\.1\.1 / },
    ],
  });

  s.rcpt.delete('later@example.com');
  await s.relay.relay.scheduler.runDue(now + 5 * MIN);
  t.same(s.tenantUpstream.received.map((m) => m.rcptTo), [['ok@example.com'], ['later@example.com']], 'the sent recipient was not sent again');
  t.equal(await stateOf(s, id), undefined);
  t.ok(s.relay.logs.some((l) => l.event === 'bounced' && l.rcpt === 'gone@example.com'));

  await s.relay.relay.scheduler.runDue(now + 5 * MIN);
  const dsn = smarthost.received.at(-1);
  t.match(dsn, { mailFrom: '', rcptTo: ['app@acme.test'] }, 'the DSN goes to the sender, from <>, through the global route');
  const text = dsn?.raw.toString() ?? '';
  t.match(text, /\r\nContent-Type: multipart\/report; report-type=delivery-status; boundary="/);
  t.match(text, /\r\nContent-Type: message\/delivery-status\r\n/);
  t.match(text, /\r\nFinal-Recipient: rfc822; gone@example\.com\r\nAction: failed\r\nStatus: 5\.1\.1\r\nDiagnostic-Code: smtp; 550 5\.1\.1 /);
  t.notMatch(text, /Final-Recipient: rfc822; (ok|later)@/, 'only the failed recipient is reported');
  t.match(text, /\r\nContent-Type: text\/rfc822-headers\r\n[\s\S]*\r\nSubject: test\r\n/);
  t.notMatch(text, /Hello\./, 'the original body is not returned');
  t.match(text, /\r\nAuto-Submitted: auto-replied\r\n/);
});

t.test('a temporary failure backs off from the minimum, doubling to the cap', async (t) => {
  const s = await setup(t);
  s.rcpt.set('*', [451, '4.3.0 try later']);
  const id = queuedId((await sendThrough(s.relay.port, { from: 'app@acme.test', to: 'x@example.com' })).response);
  let now = Date.now();
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    await s.relay.relay.scheduler.runDue(now);
    const state = await stateOf(s, id);
    delays.push(((state?.nextAttemptAt ?? 0) - now) / MIN);
    now = state?.nextAttemptAt ?? now;
  }
  t.same(delays, [5, 10, 20, 40, 60, 60]);
  t.match(await stateOf(s, id), { attempts: 6, lastError: /try later/ });
});

t.test('jitter moves each delay by at most the configured fraction', async (t) => {
  const policy = { minMs: 300_000, maxMs: 3_600_000, jitter: 0.2, maxLifetimeMs: 0 };
  t.equal(retryDelay(1, policy, () => 0), 240_000);
  t.equal(retryDelay(1, policy, () => 0.999999), 360_000);
  t.equal(retryDelay(10, policy, () => 0.5), 3_600_000);
});

t.test('at the end of its lifetime, what is still undelivered fails with 5.4.7 and a DSN', async (t) => {
  const s = await setup(t);
  s.rcpt.set('*', [451, '4.3.0 try later']);
  const before = smarthost.received.length;
  const id = queuedId((await sendThrough(s.relay.port, { from: 'app@acme.test', to: 'x@example.com' })).response);
  await s.relay.relay.scheduler.runDue(Date.now() + 121 * 60 * MIN);
  t.equal(await stateOf(s, id), undefined);
  await s.relay.relay.scheduler.runDue(Date.now() + 121 * 60 * MIN);
  t.match(smarthost.received.at(-1)?.raw.toString(), /Status: 5\.4\.7\r\nDiagnostic-Code: smtp; 451 4\.3\.0 try later\r\n/, "the upstream's own last reply");
  t.equal(smarthost.received.length, before + 1);
});

async function relayWithRefusingSmarthost(t: Test) {
  const refusing = await startUpstream({ rcpt: () => [550, '5.1.1 no such user'] });
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${refusing.port}, tls: none }\n`,
    {},
    { manualScheduler: true },
  );
  t.teardown(async () => {
    await relay.close();
    await refusing.close();
  });
  return { relay, refusing };
}

t.test('the null sender is never bounced', async (t) => {
  const { relay, refusing } = await relayWithRefusingSmarthost(t);
  await sendThrough(relay.port, { from: '', to: 'x@example.com' });
  await relay.relay.scheduler.runDue();
  t.equal(relay.relay.scheduler.size, 0, 'failed, and no DSN queued');
  t.match(relay.logs.find((l) => l.event === 'bounced'), { rcpt: 'x@example.com', dsn: false });
  t.equal(refusing.received.length, 0);
});

t.test('a DSN that cannot be delivered is not bounced again', async (t) => {
  const { relay } = await relayWithRefusingSmarthost(t);
  await sendThrough(relay.port, { from: 'app@example.com', to: 'x@example.com' });
  for (let i = 0; i < 3; i++) await relay.relay.scheduler.runDue();
  t.equal(relay.relay.scheduler.size, 0, 'nothing left: the message failed, its DSN failed, no DSN of a DSN');
  t.same(relay.logs.filter((l) => l.event === 'bounced').map((l) => l.dsn), [true, false]);
});

t.test('an upstream that drops the connection after the dot: retried, logged as a possible duplicate', async (t) => {
  const faulty = await startDotFaultServer('drop');
  t.teardown(() => faulty.close());
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${faulty.port}, tls: none, timeoutSeconds: 2 }\n`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  const id = queuedId((await sendThrough(relay.port, { from: 'app@example.com', to: 'x@example.com' })).response);
  await relay.relay.scheduler.runDue();
  t.equal(faulty.dots, 1);
  t.match(await relay.relay.spool.read(id), { attempts: 1, recipients: [{ status: 'pending', reply: /^451 4\.4\.2 / }] });
  t.match(relay.logs.find((l) => l.event === 'possible-duplicate'), { id });
});

t.test('a hanging upstream is cut by its deadline while other tenants deliver; one backlog does not block others', async (t) => {
  const silent = await startSilentServer();
  const healthy = await startUpstream();
  t.teardown(() => Promise.all([silent.close(), healthy.close()]));
  const relay = await startTestRelay(
    `
delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${healthy.port}, tls: none }
tenants:
  - id: dead
    match: { domains: [dead.test] }
    upstream: { host: 127.0.0.1, port: ${silent.port}, tls: none, connectTimeoutSeconds: 3, timeoutSeconds: 3, maxConnections: 2 }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  for (let i = 0; i < 10; i++) await sendThrough(relay.port, { from: `n${i}@dead.test`, to: 'x@example.com' });
  await sendThrough(relay.port, { from: 'app@other.test', to: 'x@example.com' });
  const round = relay.relay.scheduler.runDue();
  // The dead upstream's deadline is 3 s, so a slow machine has room for the healthy attempt.
  t.ok(await until(() => healthy.received.length === 1, 2000), "the other tenant's message went out while the dead upstream hung");
  // The healthy attempt ends a moment after its upstream has the message (the 250, the spool); the dead
  // upstream's two hang until their deadline.
  t.ok(await until(() => relay.relay.scheduler.inFlight === 2, 800), 'the dead upstream still holds its two slots');
  await round;
  const deferred = relay.logs.filter((l) => l.event === 'deferred');
  t.equal(deferred.length, 2, 'only the dead upstream\'s own two slots were used; the rest waits its turn');
  t.match(deferred[0], { upstream: 'dead' });
});

t.test('fallback: after temporary failures for the configured time, the smarthost delivers; never after a 5xx', async (t) => {
  const s = await setup(t, 'delivery: { fallbackToSmarthostAfterMinutes: 30 }');
  s.rcpt.set('*', [451, '4.3.0 down for maintenance']);
  const id = queuedId((await sendThrough(s.relay.port, { from: 'app@acme.test', to: 'x@example.com' })).response);
  const now = Date.now();
  await s.relay.relay.scheduler.runDue(now);
  await s.relay.relay.scheduler.runDue(now + 10 * MIN);
  t.match(await stateOf(s, id), { attempts: 2 }, 'still the tenant upstream before 30 minutes');
  const before = smarthost.received.length;
  await s.relay.relay.scheduler.runDue(now + 31 * MIN);
  t.equal(await stateOf(s, id), undefined);
  t.equal(smarthost.received.length, before + 1, 'delivered by the smarthost');
  t.equal(smarthost.received.at(-1)?.mailFrom, 'app@acme.test');

  s.rcpt.set('*', [550, '5.7.1 relay denied']);
  await sendThrough(s.relay.port, { from: 'app@acme.test', to: 'y@example.com' });
  await s.relay.relay.scheduler.runDue(now + 60 * MIN);
  t.equal(smarthost.received.filter((m) => m.rcptTo.includes('y@example.com')).length, 0, 'a 5xx is final: no fallback');
});

t.test('upstream failures at each stage: 4xx and connection errors retried, 5xx failed with a DSN', async (t) => {
  const cases: { name: string; options: Parameters<typeof startUpstream>[0] | 'closed'; expect: 'pending' | 'failed'; reply: RegExp }[] = [
    { name: 'refused connection', options: 'closed', expect: 'pending', reply: /^451 4\.4\.1 / },
    { name: '421 greeting', options: { greeting: { code: 421, text: 'busy' } }, expect: 'pending', reply: /^451 4\.4\.0 .*421/ },
    { name: '451 at MAIL FROM', options: { mail: () => [451, '4.3.0 later'] }, expect: 'pending', reply: /^451 4\.4\.0 / },
    { name: '553 at MAIL FROM', options: { mail: () => [553, '5.7.1 sender not allowed'] }, expect: 'failed', reply: /^553 5\.7\.1 / },
    { name: '452 at RCPT', options: { rcpt: () => [452, '4.2.2 mailbox full'] }, expect: 'pending', reply: /^451 4\.4\.0 / },
    { name: '451 after the dot', options: { data: [451, '4.3.0 scanner down'] }, expect: 'pending', reply: /^451 4\.4\.0 .*scanner down/ },
    { name: '554 after the dot', options: { data: [554, '5.6.0 content rejected'] }, expect: 'failed', reply: /^554 5\.6\.0 / },
  ];
  for (const c of cases) {
    const up = c.options === 'closed' ? undefined : await startUpstream(c.options);
    const port = up?.port ?? (await refusingPort());
    const relay = await startTestRelay(
      `delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${port}, tls: none, connectTimeoutSeconds: 1, timeoutSeconds: 2 }\n`,
      {},
      { manualScheduler: true },
    );
    const id = queuedId((await sendThrough(relay.port, { from: 'app@example.com', to: 'x@example.com' })).response);
    await relay.relay.scheduler.runDue();
    const state = await relay.relay.spool.read(id);
    if (c.expect === 'pending') t.match(state?.recipients, [{ status: 'pending', reply: c.reply }], c.name);
    else {
      t.equal(state, undefined, `${c.name}: out of the queue`);
      t.match(relay.logs.find((l) => l.event === 'bounced'), { reply: c.reply, dsn: true }, `${c.name}: bounced`);
    }
    await relay.close();
    await up?.close();
  }
});

t.test('a message file that cannot be read fails the attempt with the read error (not the deadline), nothing is sent, and it is retried', async (t) => {
  const s = await setup(t);
  const raw = `Subject: large\r\n\r\n${'a line of a large message\r\n'.repeat(50_000)}`;
  const id = queuedId((await sendThrough(s.relay.port, { from: 'app@acme.test', to: 'x@example.com', raw })).response);
  fs.rmSync(s.relay.relay.spool.layout.message(id));
  await s.relay.relay.scheduler.runDue();
  t.equal(s.tenantUpstream.received.length, 0, 'nothing sent');
  const state = await stateOf(s, id);
  t.match(state, { attempts: 1, recipients: [{ status: 'pending', reply: /^4\d\d / }] });
  t.notMatch(state?.recipients[0]?.reply, /no answer within/, 'the read error ended the attempt, not the deadline');
});

t.test('a DSN is DKIM-signed as the platform (dkim.signingDomain), and the signature verifies', async (t) => {
  const key = makeDkimKey('ed25519');
  const upstream = await startUpstream({ rcpt: (a) => (a.startsWith('gone') ? [550, '5.1.1 no such user'] : undefined) });
  const relay = await startTestRelay(
    `hostname: relay.platform.test
delivery: { mode: queue, spool: { path: \${SPOOL} } }
dkim: { selector: relay, signingDomain: platform.test, privateKey: "\${KEY}" }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
tenants: [{ id: acme, match: { domains: [acme.test] }, dkim: { disablePlatformDkim: true } }]
`,
    { KEY: key.privateKeyPem },
    { manualScheduler: true },
  );
  t.teardown(async () => {
    await relay.close();
    await upstream.close();
  });
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'gone@example.com' });
  await relay.relay.scheduler.runDue();
  await relay.relay.scheduler.runDue();
  const dsn = upstream.received.find((m) => m.mailFrom === '');
  t.ok(dsn, 'the DSN went out');
  const verdicts = await verifyWithMailauth(dsn?.raw ?? Buffer.alloc(0), { 'relay._domainkey.platform.test': key.record });
  t.match(verdicts, [{ result: 'pass', domain: 'platform.test', selector: 'relay' }]);
  t.match(dsn?.raw.toString() ?? '', /\r\nFrom: Mail Delivery System <MAILER-DAEMON@relay\.platform\.test>\r\n/, 'its From is under the signing domain: aligned');
});
