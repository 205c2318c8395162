// The delivery status notification (RFC 3464, RFC 6522) the relay makes for what failed: as a table of
// recipients' replies in and the report's fields out.
import t from 'tap';
import { buildDsn } from '../relay/queue/dsn.js';
import type { QueuedMessage, QueuedRecipient } from '../relay/queue/entry.js';

const original: QueuedMessage = { v: 1, id: 'mx1abc', createdAt: Date.UTC(2026, 11, 4, 9, 0), mailFrom: 'app@acme.test', tenant: 'acme', recipients: [], attempts: 3, nextAttemptAt: 0, size: 100 };
const dsnOf = (failed: QueuedRecipient[]) =>
  buildDsn({ original, failed, originalHeader: Buffer.from('From: <app@acme.test>\r\nSubject: Reset\r\n\r\n'), reportingHost: 'relay.platform.test', now: new Date(Date.UTC(2026, 11, 4, 10, 0)) }).toString('latin1');

t.test("each failed recipient: its Status from the reply's enhanced code (a 4xx made final as 5), and the upstream's own words as the Diagnostic-Code", async (t) => {
  const cases: [string, QueuedRecipient, string, string | undefined][] = [
    ['a 550 with 5.1.1', { address: 'a@x.test', status: 'failed', reply: '550 5.1.1 no such user' }, '5.1.1', 'smtp; 550 5.1.1 no such user'],
    ['the upstream said more than the relay', { address: 'b@x.test', status: 'failed', reply: '554 5.0.0 rejected', upstreamReply: '554 5.7.1 Message rejected as spam' }, '5.0.0', 'smtp; 554 5.7.1 Message rejected as spam'],
    ['expired: a 4.4.7 becomes 5.4.7', { address: 'c@x.test', status: 'failed', reply: '451 4.4.7 Delivery time expired' }, '5.4.7', 'smtp; 451 4.4.7 Delivery time expired'],
    ['no reply code: 5.0.0 and no Diagnostic-Code', { address: 'd@x.test', status: 'failed', reply: 'delivery failed' }, '5.0.0', undefined],
    ['a multi-line reply is one line', { address: 'e@x.test', status: 'failed', reply: '550 5.2.1 mailbox\r\ndisabled' }, '5.2.1', 'smtp; 550 5.2.1 mailbox disabled'],
  ];
  for (const [name, r, status, diagnostic] of cases) {
    const text = dsnOf([r]);
    const block = text.slice(text.indexOf(`Final-Recipient: rfc822; ${r.address}`));
    t.match(block, new RegExp(`^Final-Recipient: rfc822; ${r.address.replace('.', '\\.')}\\r\\nAction: failed\\r\\nStatus: ${status.replaceAll('.', '\\.')}\\r\\n`), `${name}: Status ${status}`);
    if (diagnostic) t.ok(block.includes(`Diagnostic-Code: ${diagnostic}\r\n`), `${name}: ${diagnostic}`);
    else t.notMatch(block.split('\r\n\r\n')[0] ?? '', /Diagnostic-Code/, `${name}: no Diagnostic-Code`);
  }
});

t.test('the report: from MAILER-DAEMON, to the sender, a multipart/report with the headers and never the body', async (t) => {
  const text = dsnOf([{ address: 'a@x.test', status: 'failed', reply: '550 5.1.1 no such user' }]);
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  t.match(head, /^From: Mail Delivery System <MAILER-DAEMON@relay\.platform\.test>\r\nTo: <app@acme\.test>\r\n/);
  t.match(head, /\r\nAuto-Submitted: auto-replied\r\n/);
  t.match(head, /\r\nContent-Type: multipart\/report; report-type=delivery-status; boundary="dsn-[0-9a-f]{24}"$/);
  t.match(text, /\r\nReporting-MTA: dns; relay\.platform\.test\r\nX-Tenant-Relay-Queue-ID: mx1abc\r\nArrival-Date: Fri, 04 Dec 2026 09:00:00 \+0000\r\n/);
  t.match(text, /\r\nContent-Type: text\/rfc822-headers\r\nContent-Description: Undelivered Message Headers\r\n\r\nFrom: <app@acme\.test>\r\nSubject: Reset\r\n\r\n--dsn-/);
});
