// The upstream's own reply, per recipient, kept beside the relay's: as servers really word it, with the
// queue id the tenant's mail admin searches their logs for, in the delivery log, `queue show`, the DSN's
// Diagnostic-Code and pass-through's log line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parseUpstreamReply } from '../relay/delivery/upstream-reply.js';
import { runCli } from './helpers/cli.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { queueIdOf, startUpstream } from './helpers/upstream.js';

t.test('replies as servers word them: code, enhanced code, text and the queue id they name', async (t) => {
  const cases: [string, string, Record<string, unknown> | undefined][] = [
    ['Postfix', '250 2.0.0 Ok: queued as 4Xk2Lm0PqRz', { code: 250, enhanced: '2.0.0', text: 'Ok: queued as 4Xk2Lm0PqRz', queueId: '4Xk2Lm0PqRz' }],
    ['Microsoft 365', '250 2.0.0 OK <DM6PR11MB4123.namprd11.prod.outlook.com@DM6PR11MB4123> [Hostname=DM6PR11MB4123.namprd11.prod.outlook.com]', { code: 250, queueId: 'DM6PR11MB4123.namprd11.prod.outlook.com@DM6PR11MB4123' }],
    ['Gmail', '250 2.0.0 OK  1733131200 d2e1a72fcca58-7256f2ab2b0si1234567b3a.123 - gsmtp', { code: 250, enhanced: '2.0.0', queueId: 'd2e1a72fcca58-7256f2ab2b0si1234567b3a.123' }],
    ['Amazon SES', '250 Ok 0100018c1c2d3e4f-5a6b7c8d-1234-5678-9abc-def012345678-000000', { code: 250, queueId: '0100018c1c2d3e4f-5a6b7c8d-1234-5678-9abc-def012345678-000000' }],
    ['SendGrid', '250 Ok: queued as V3bkCqB3SNGkkB1ZTLj0ng', { code: 250, queueId: 'V3bkCqB3SNGkkB1ZTLj0ng' }],
    ['Exim', '250 OK id=1rAbCd-000123-Ef', { code: 250, queueId: '1rAbCd-000123-Ef' }],
    ['Haraka', '250 Message Queued (1F2E3D4C-5B6A-4798-8A9B-0C1D2E3F4A5B.1)', { code: 250, queueId: '1F2E3D4C-5B6A-4798-8A9B-0C1D2E3F4A5B.1' }],
    ['no id', '250 2.0.0 Great success', { code: 250, enhanced: '2.0.0', text: 'Great success', queueId: undefined }],
    ['a refusal has no queue id', '550 5.1.1 <x@example.com>: Recipient address rejected: queued as nothing', { code: 550, enhanced: '5.1.1', queueId: undefined }],
    ['multi-line: every line is kept, joined', '451-4.7.1 Please try again later\n451 4.7.1 Greylisted for 300 seconds', { code: 451, enhanced: '4.7.1', text: 'Please try again later Greylisted for 300 seconds' }],
    [
      "Gmail's daily limit keeps what it says on its first line",
      '550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\r\n550-5.4.5 sending limits go to\r\n550 5.4.5  https://support.google.com/a/answer/166852 d2e1a72fcca58-gsmtp',
      { code: 550, enhanced: '5.4.5', text: 'Daily user sending limit exceeded. For more information on Gmail sending limits go to https://support.google.com/a/answer/166852 d2e1a72fcca58-gsmtp' },
    ],
    ['control characters and length are tamed', `250 2.0.0 ${'\u0007x'.repeat(300)}`, { code: 250, text: /^(x ){100}.*\.\.\.$/ }],
    ['not a reply', 'connection reset', undefined],
  ];
  for (const [name, raw, want] of cases) {
    const got = parseUpstreamReply(raw);
    if (want === undefined) t.equal(got, undefined, name);
    else t.match(got, want, name);
  }
  t.ok((parseUpstreamReply(`250 ${'y'.repeat(2000)}`)?.text.length ?? 0) <= 400, 'bounded');
});

t.test("queue mode: the delivery log, queue show and the DSN carry the upstream's own reply", async (t) => {
  const upstream = await startUpstream({ rcpt: (a) => (a.startsWith('busy') ? [450, '4.2.1 Mailbox busy, try later'] : a.startsWith('gone') ? [550, '5.1.1 <gone@example.com>: Recipient address rejected: User unknown'] : undefined) });
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  const info = await sendThrough(relay.port, { from: 'app@example.org', to: ['ok@example.com', 'busy@example.com', 'gone@example.com'] });
  const id = /queued as (\w+)/.exec(info.response)?.[1] ?? '';
  // One that finishes at once: its bounce is sent now.
  await sendThrough(relay.port, { from: 'app@example.org', to: ['gone@example.com'] });
  await relay.relay.scheduler.runDue(Date.now());
  await relay.relay.scheduler.runDue(Date.now());

  const attempt = relay.logs.find((l) => l.event === 'delivery-attempt' && l.id === id) as { recipients: Record<string, unknown>[] } | undefined;
  t.match(attempt?.recipients, [
    { rcpt: 'ok@example.com', status: 'sent', upstreamReply: `250 2.0.0 Ok: queued as ${queueIdOf(0)}`, upstreamQueueId: queueIdOf(0) },
    { rcpt: 'busy@example.com', status: 'temp', reply: /^451 4\.4\.0 /, upstreamReply: '450 4.2.1 Mailbox busy, try later' },
    { rcpt: 'gone@example.com', status: 'perm', upstreamReply: /^550 5\.1\.1 <gone@example\.com>: Recipient address rejected/ },
  ]);

  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-reply-')), 'relay.yaml');
  fs.writeFileSync(file, `delivery: { spool: { path: ${relay.spoolDir} } }\nsmarthost: { host: 127.0.0.1, tls: none }\n`);
  t.teardown(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }));
  const show = await runCli(['queue', 'show', id, '--config', file]);
  t.match(show.stdout, new RegExp(`sent +<ok@example\\.com>  250 2\\.0\\.0 Ok: delivered via smarthost.*\\n {10}upstream said: 250 2\\.0\\.0 Ok: queued as ${queueIdOf(0)}\\n`));
  t.match(show.stdout, /pending <busy@example\.com> {2}451 4\.4\.0 .*\n {10}upstream said: 450 4\.2\.1 Mailbox busy, try later/);

  // The bounce for gone@ went to the sender through the smarthost: the Diagnostic-Code is the upstream's.
  const dsn = upstream.received.find((m) => m.mailFrom === '')?.raw.toString() ?? '';
  t.match(dsn, /Final-Recipient: rfc822; gone@example\.com\r\nAction: failed\r\nStatus: 5\.1\.1\r\nDiagnostic-Code: smtp; 550 5\.1\.1 <gone@example\.com>: Recipient address rejected: User unknown\r\n/);
});

t.test("pass-through: the message log line carries the upstream's reply and queue id", async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(`smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`);
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'app@example.org', to: 'x@example.com' });
  t.match(relay.logs.find((l) => l.event === 'message'), { recipients: [{ rcpt: 'x@example.com', status: 'sent', upstreamReply: `250 2.0.0 Ok: queued as ${queueIdOf(0)}`, upstreamQueueId: queueIdOf(0) }] });
});
