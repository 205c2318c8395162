// Bounces by mail: mail through the smarthost leaves with a return path of its own (VERP, with a mac), and
// the bounce domain's listener takes DSNs (RFC 3464) and abuse reports (RFC 5965) for those addresses
// only: each is linked to its message and to a recipient that message had, told as a delivery event, and
// suppresses the address for the tenant. A report for a return path the relay did not make is refused.
import path from 'node:path';
import t, { type Test } from 'tap';
import { findInTraces } from '../relay/reporting/trace-read.js';
import { queuedId, replyOf, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

async function fixture(t: Test): Promise<{ relay: TestRelay; upstream: Upstream; rcpts: string[]; statusOf: (id: string) => string | null | undefined }> {
  const rcpts: string[] = [];
  const upstream = await startUpstream({ rcpt: (a) => void rcpts.push(a) });
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
  return { relay, upstream, rcpts, statusOf: (id) => findInTraces([traceFile], { queueId: id })[0]?.status };
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
  const before = f.rcpts.length;
  await f.relay.relay.scheduler.runDue();
  t.same(f.rcpts.slice(before), ['lee@example.com'], 'both suppressed for acme');
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
  await new Promise((r) => setTimeout(r, 400));
  t.equal(f.statusOf(id), 'delivered', 'nothing linked');
  t.match(f.relay.logs.filter((l) => l.event === 'bounce-report'), [{ linked: 0 }, { linked: 0 }]);
});
