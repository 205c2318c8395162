// Bounces by mail: mail through the smarthost leaves with a return path of its own (VERP, with a mac), and
// the bounce domain's listener takes DSNs (RFC 3464) and abuse reports (RFC 5965) for those addresses
// only: each is linked to its message and to a recipient that message had, told as a delivery event, and
// suppresses the address for the tenant. A report for a return path the relay did not make is refused.
import path from 'node:path';
import t, { type Test } from 'tap';
import { findInTraces } from '../relay/reporting/trace-read.js';
import { readBounceReport } from '../relay/suppression/bounce-report.js';
import { queuedId, replyOf, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

async function fixture(t: Test): Promise<{ relay: TestRelay; upstream: Upstream; statusOf: (id: string) => string | null | undefined }> {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `
delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
bounces: { domain: bounces.platform.test, signingKey: "bounce-signing-key-of-the-test-0123456789", listen: { host: 127.0.0.1, port: 0 } }
tenants:
  - { id: acme, match: { domains: [acme.test] } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  const traceFile = path.join(relay.spoolDir, 'trace.db');
  return { relay, upstream, statusOf: (id) => findInTraces([traceFile], { queueId: id })[0]?.status };
}

const dsn = (recipient: string, action: string, status: string) =>
  [
    'From: MAILER-DAEMON@mx.example.com',
    'To: bounces@bounces.platform.test',
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain',
    '',
    'I could not deliver your message.',
    '--b1',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.example.com',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    `Action: ${action}`,
    `Status: ${status}`,
    'Diagnostic-Code: smtp; 550 5.1.1 <' + recipient + '>: Recipient address rejected: User unknown',
    '--b1--',
    '',
  ].join('\r\n');

const arf = (recipient: string) =>
  [
    'From: abuse@isp.example',
    'Subject: FW: complaint',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=feedback-report; boundary="b2"',
    '',
    '--b2',
    'Content-Type: text/plain',
    '',
    'This is an email abuse report.',
    '--b2',
    'Content-Type: message/feedback-report',
    '',
    'Feedback-Type: abuse',
    'User-Agent: SomeGenerator/1.0',
    'Version: 1',
    `Original-Rcpt-To: ${recipient}`,
    '--b2--',
    '',
  ].join('\r\n');

t.test('a DSN and an abuse report for a message the relay sent: linked, told, and the addresses suppressed for its tenant', async (t) => {
  const f = await fixture(t);
  const id = queuedId((await sendThrough(f.relay.port, { from: 'app@acme.test', to: ['pat@example.com', 'kim@example.com'] })).response);
  await f.relay.relay.scheduler.runDue();
  const returnPath = f.upstream.received[0]?.mailFrom ?? '';
  t.match(returnPath, new RegExp(`^bounces\\+${id}-[\\w-]{16}@bounces\\.platform\\.test$`), 'it left with its own return path');
  const bouncePort = f.relay.relay.bouncePort ?? 0;
  t.equal(await replyOf(sendThrough(bouncePort, { from: '', to: returnPath, raw: dsn('pat@example.com', 'failed', '5.1.1') })), 'resolved', 'the DSN is taken');
  t.ok(await until(() => f.statusOf(id) === 'bounced', 3000), 'the message is bounced in the trace (a bounced delivery event)');
  t.equal(await replyOf(sendThrough(bouncePort, { from: '', to: returnPath, raw: arf('kim@example.com') })), 'resolved');
  t.ok(await until(() => f.statusOf(id) === 'complained', 3000), 'then complained');
  await sendThrough(f.relay.port, { from: 'app@acme.test', to: ['pat@example.com', 'kim@example.com', 'lee@example.com'] });
  const before = f.upstream.rcpts.length;
  await f.relay.relay.scheduler.runDue();
  t.same(f.upstream.rcpts.slice(before), ['lee@example.com'], 'both suppressed for acme');
  t.match(f.relay.logs.filter((l) => l.event === 'bounce-report'), [{ messages: [id], linked: 1 }, { messages: [id], linked: 1 }]);
});

t.test('a report for a return path the relay did not make is refused at RCPT; one naming another recipient, or only delayed, is never linked', async (t) => {
  const f = await fixture(t);
  const id = queuedId((await sendThrough(f.relay.port, { from: 'app@acme.test', to: 'pat@example.com' })).response);
  await f.relay.relay.scheduler.runDue();
  const returnPath = f.upstream.received[0]?.mailFrom ?? '';
  const bouncePort = f.relay.relay.bouncePort ?? 0;
  const forged = returnPath.replace(/-[\w-]{16}@/, '-AAAAAAAAAAAAAAAA@');
  t.match(await replyOf(sendThrough(bouncePort, { from: '', to: forged, raw: dsn('pat@example.com', 'failed', '5.1.1') })), /^550 5\.1\.1 No such bounce address here/);
  t.match(await replyOf(sendThrough(bouncePort, { from: '', to: 'postmaster@bounces.platform.test', raw: dsn('pat@example.com', 'failed', '5.1.1') })), /^550 5\.1\.1 /);
  t.match(await replyOf(sendThrough(bouncePort, { from: '', to: returnPath.replace('bounces.platform.test', 'other.test'), raw: dsn('pat@example.com', 'failed', '5.1.1') })), /^550 5\.1\.1 /, 'another domain: no relaying');
  await sendThrough(bouncePort, { from: '', to: returnPath, raw: dsn('someone-else@example.com', 'failed', '5.1.1') });
  await sendThrough(bouncePort, { from: '', to: returnPath, raw: dsn('pat@example.com', 'delayed', '4.4.1') });
  t.ok(await until(() => f.relay.logs.filter((l) => l.event === 'bounce-report').length === 2, 3000), 'both reports taken');
  t.match(f.relay.logs.filter((l) => l.event === 'bounce-report'), [{ linked: 0 }, { linked: 0 }], 'nothing linked');
  t.equal(f.statusOf(id), 'delivered');
});

t.test('what a report says: RFC 3464 failures, RFC 5965 complaints, qmail\'s and Exim\'s forms; delays and anything else say nothing', async (t) => {
  const qmail = (why: string) =>
    `From: MAILER-DAEMON@mx.example.com\r\nSubject: failure notice\r\n\r\nHi. This is the qmail-send program at mx.example.com.\r\nI'm afraid I wasn't able to deliver your message to the following addresses.\r\nThis is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n<pat@example.com>:\r\n${why}\r\n\r\n--- Below this line is a copy of the message.\r\n\r\nTo: <kim@example.com>:\r\n`;
  const exim = (recipient: string, reply: string) =>
    `From: Mail Delivery System <Mailer-Daemon@mx.example.com>\r\nX-Failed-Recipients: ${recipient}\r\nSubject: Mail delivery failed: returning message to sender\r\n\r\nThis message was created automatically by mail delivery software.\r\n\r\nA message that you sent could not be delivered to one or more of its\r\nrecipients. This is a permanent error. The following address(es) failed:\r\n\r\n  ${recipient}\r\n    host mx.example.com [192.0.2.1]\r\n    SMTP error from remote mail server after RCPT TO:<${recipient}>:\r\n    ${reply}\r\n\r\n------ This is a copy of the message, including all the headers. ------\r\n\r\nTo: kim@example.com\r\n`;
  const twoRecipients = dsn('pat@example.com', 'failed', '5.1.1').replace('--b1--', 'Final-Recipient: rfc822; kim@example.com\r\nAction: failed\r\nStatus: 5.2.1\r\n--b1--');
  const cases: [string, string, { type: string; recipient: string }[]][] = [
    ['a DSN, failed 5.1.1', dsn('pat@example.com', 'failed', '5.1.1'), [{ type: 'bounced', recipient: 'pat@example.com' }]],
    ['a DSN for two recipients', twoRecipients, [{ type: 'bounced', recipient: 'pat@example.com' }, { type: 'bounced', recipient: 'kim@example.com' }]],
    ['a DSN, delayed', dsn('pat@example.com', 'delayed', '4.4.1'), []],
    ['a DSN, failed with a 4.x.x status', dsn('pat@example.com', 'failed', '4.2.2'), []],
    ['an abuse report', arf('kim@example.com'), [{ type: 'complained', recipient: 'kim@example.com' }]],
    ["qmail's form, (#5.1.1)", qmail('Sorry, no mailbox here by that name. (#5.1.1)'), [{ type: 'bounced', recipient: 'pat@example.com' }]],
    ["qmail's form, the remote's 550 5.1.1", qmail('Remote host said: 550 5.1.1 <pat@example.com>: User unknown'), [{ type: 'bounced', recipient: 'pat@example.com' }]],
    ["qmail's form, a temporary failure", qmail('Connection refused. (#4.4.1)'), []],
    ["Exim's form, the remote's 550 5.1.1", exim('pat@example.com', '550 5.1.1 <pat@example.com>: Recipient address rejected: User unknown in virtual mailbox table'), [{ type: 'bounced', recipient: 'pat@example.com' }]],
    ["Exim's form, a reply without a 5.x.x code", exim('pat@example.com', '550 Administrative prohibition'), []],
    ["Exim's form, an address X-Failed-Recipients does not name", exim('pat@example.com', '550 5.1.1 unknown').replace('X-Failed-Recipients: pat@example.com', 'X-Failed-Recipients: kim@example.com'), []],
    ['an auto-reply', 'From: pat@example.com\r\nSubject: Out of office\r\n\r\nI am away until Monday.\r\n', []],
  ];
  for (const [name, report, expected] of cases) t.match(readBounceReport(Buffer.from(report)), expected, name);
  for (const [name, report, expected] of cases) t.equal(readBounceReport(Buffer.from(report)).length, expected.length, `${name}: that many`);
});

t.test("a tenant's own upstream keeps the tenant's sender, unless the tenant opts in (delivery.verp)", async (t) => {
  const own = await startUpstream();
  t.teardown(() => own.close());
  const relay = await startTestRelay(
    `
delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: 9, tls: none }
bounces: { domain: bounces.platform.test, signingKey: "bounce-signing-key-of-the-test-0123456789", listen: { host: 127.0.0.1, port: 0 } }
tenants:
  - { id: plain, match: { domains: [plain.test] }, upstream: { host: 127.0.0.1, port: ${own.port}, tls: none } }
  - { id: optin, match: { domains: [optin.test] }, upstream: { host: 127.0.0.1, port: ${own.port}, tls: none }, delivery: { verp: true } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'app@plain.test', to: 'a@example.com' });
  const id = queuedId((await sendThrough(relay.port, { from: 'app@optin.test', to: 'b@example.com' })).response);
  await relay.relay.scheduler.runDue();
  const fromOf = (to: string) => own.received.find((m) => m.rcptTo.includes(to))?.mailFrom;
  t.equal(fromOf('a@example.com'), 'app@plain.test');
  t.match(fromOf('b@example.com'), new RegExp(`^bounces\\+${id}-[\\w-]{16}@bounces\\.platform\\.test$`));
});
