// A delivery status notification (RFC 3464 multipart/report, RFC 6522) telling the sender which
// recipients failed for good and why. The relay sends it with MAIL FROM:<> so it can never bounce back.
import { randomBytes } from 'node:crypto';
import { rfc5322Date } from '../message/trace.js';
import type { QueuedMessage, QueuedRecipient } from './entry.js';

export interface DsnInput {
  readonly original: QueuedMessage;
  readonly failed: readonly QueuedRecipient[];
  /** The original message's header block, returned as text/rfc822-headers (never the body). */
  readonly originalHeader: Buffer;
  readonly reportingHost: string;
  readonly now: Date;
}

export function buildDsn(input: DsnInput): Buffer {
  const { original, failed, reportingHost, now } = input;
  const boundary = `dsn-${randomBytes(12).toString('hex')}`;
  const statusOf = (r: QueuedRecipient) => /\b([245]\.\d{1,3}\.\d{1,3})\b/.exec(r.reply ?? '')?.[1]?.replace(/^[24]/, '5') ?? '5.0.0';

  const human = [
    `This is the mail system at ${reportingHost}.`,
    '',
    'Your message could not be delivered to the following recipient(s):',
    '',
    ...failed.map((r) => `  <${r.address}>: ${oneLine(r.reply ?? 'delivery failed')}`),
    '',
    'The headers of your message are attached.',
  ].join('\r\n');

  const status = [
    `Reporting-MTA: dns; ${reportingHost}`,
    `X-Tenant-Relay-Queue-ID: ${original.id}`,
    `Arrival-Date: ${rfc5322Date(new Date(original.createdAt))}`,
    ...failed.flatMap((r) => [
      '',
      `Final-Recipient: rfc822; ${r.address}`,
      'Action: failed',
      `Status: ${statusOf(r)}`,
      // RFC 3464 2.3.6: the code the remote MTA issued, when it issued one; else the relay's own.
      ...diagnostic(r),
    ]),
  ].join('\r\n');

  const header = input.originalHeader.toString('latin1').replace(/(\r?\n)+$/, '');

  return Buffer.from(
    [
      `From: Mail Delivery System <MAILER-DAEMON@${reportingHost}>`,
      `To: <${original.mailFrom}>`,
      'Subject: Undelivered Mail Returned to Sender',
      `Date: ${rfc5322Date(now)}`,
      `Message-ID: <${original.id}.${now.getTime()}@${reportingHost}>`,
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
      '',
      'This is a MIME-encapsulated message.',
      '',
      `--${boundary}`,
      'Content-Type: text/plain; charset=us-ascii',
      'Content-Description: Notification',
      '',
      human,
      '',
      `--${boundary}`,
      'Content-Type: message/delivery-status',
      'Content-Description: Delivery report',
      '',
      status,
      '',
      `--${boundary}`,
      'Content-Type: text/rfc822-headers',
      'Content-Description: Undelivered Message Headers',
      '',
      header,
      '',
      `--${boundary}--`,
      '',
    ].join('\r\n'),
    'latin1',
  );
}

function diagnostic(r: QueuedRecipient): string[] {
  const said = r.upstreamReply ?? r.reply;
  return said && /^\d{3}\b/.test(said) ? [`Diagnostic-Code: smtp; ${oneLine(said)}`] : [];
}

const oneLine = (s: string) => s.replace(/[\r\n]+/g, ' ').slice(0, 500);
