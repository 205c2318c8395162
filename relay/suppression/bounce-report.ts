// A bounce or complaint that came back by mail: a delivery status notification (RFC 3464: a
// multipart/report whose message/delivery-status part has, per recipient, Final-Recipient, Action and
// Status) or an abuse report (RFC 5965: message/feedback-report with Feedback-Type and
// Original-Rcpt-To), or the common form without a delivery-status part: qmail's (and its descendants')
// "Hi. This is the qmail-send program", a block per recipient, "<address>:" and then why, with its
// enhanced code as "(#5.1.1)"; and Exim's, an X-Failed-Recipients field and an indented paragraph per
// address. Read as text, bounded: only those fields are looked at. Any other report is not one the relay
// acts on.
export interface ReportedRecipient {
  readonly type: 'bounced' | 'complained';
  /** Lower case. */
  readonly recipient: string;
  readonly reason: string;
}

/** What the report says of each recipient it names; [] when it says nothing the relay acts on. */
export function readBounceReport(message: Buffer): ReportedRecipient[] {
  // Field lines unfolded; the report's fields are ASCII.
  const text = message.subarray(0, 512 * 1024).toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  const field = (name: string) => [...text.matchAll(new RegExp(`^${name}:[ \\t]*(.*)$`, 'gim'))].map((m) => (m[1] ?? '').trim());
  const address = (value: string) => /^(?:rfc822;)?\s*<?([^\s<>;]+@[^\s<>;]+)>?/i.exec(value)?.[1]?.toLowerCase();
  const feedback = field('Feedback-Type')[0];
  if (feedback !== undefined) {
    return field('Original-Rcpt-To').flatMap((v) => {
      const a = address(v);
      return a ? [{ type: 'complained' as const, recipient: a, reason: `complaint (${feedback.slice(0, 40)})` }] : [];
    });
  }
  if (!/^Final-Recipient:/im.test(text) && /This is the qmail-send program/i.test(text)) return qmailReport(text, address);
  const failed = headerOf(text).match(/^X-Failed-Recipients:[ \t]*(.*)$/im)?.[1];
  if (!/^Final-Recipient:/im.test(text) && failed !== undefined) return eximReport(text, failed, address);
  // Per recipient: its fields follow its Final-Recipient, up to the next one.
  const blocks = text.split(/^(?=Final-Recipient:)/im).slice(1);
  return blocks.flatMap((block) => {
    const get = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(block)?.[1]?.trim();
    const recipient = address(get('Final-Recipient') ?? '');
    const action = get('Action')?.toLowerCase();
    const status = get('Status');
    if (!recipient || action !== 'failed' || !status?.startsWith('5.')) return [];
    const diagnostic = get('Diagnostic-Code')?.replace(/^smtp;\s*/i, '');
    return [{ type: 'bounced' as const, recipient, reason: [status, diagnostic].filter(Boolean).join(' ').slice(0, 300) }];
  });
}

/** The report's own header: up to its first empty line. */
const headerOf = (text: string) => text.split(/\r?\n\r?\n/, 1)[0] ?? '';

/** A 5.x.x enhanced code in what a bounce says of a recipient: "(#5.1.1)", or the remote's "550 5.1.1 ...". */
const permanentStatus = (why: string) => /#(5\.\d{1,3}\.\d{1,3})\b/.exec(why)?.[1] ?? /\b5\d\d[ -](5\.\d{1,3}\.\d{1,3})\b/.exec(why)?.[1];

/**
 * Exim's bounce (and others that copy it): an X-Failed-Recipients field naming the addresses given up on,
 * and in the text a paragraph per address, indented, with the remote's reply under it (unfolded into one
 * line above). Permanent when that reply carries a 5.x.x code; without one it says nothing sure.
 */
function eximReport(text: string, failed: string, address: (value: string) => string | undefined): ReportedRecipient[] {
  const body = text.slice(headerOf(text).length).split(/^-{3,}[ \t]*(?:This is a copy of the message|Original message)/im)[0] ?? '';
  const recipients = failed.split(',').flatMap((v) => address(v.trim()) ?? []).slice(0, 100);
  return recipients.flatMap((recipient) => {
    const line = body.split(/\r?\n/).find((l) => l.trim().toLowerCase().startsWith(recipient));
    const why = (line ?? '').trim().slice(recipient.length).replace(/\s+/g, ' ').trim();
    const status = permanentStatus(why);
    return status ? [{ type: 'bounced' as const, recipient, reason: `${status} ${why}`.slice(0, 300) }] : [];
  });
}

/**
 * qmail's bounce: after "I'm afraid I wasn't able to deliver your message", a paragraph per recipient,
 * "<address>:" on a line of its own and the remote reply under it. Permanent when it carries a 5.x.x
 * code ("(#5.1.1)", or the remote's "550 5.1.1 ..."); a paragraph without one says nothing sure.
 */
function qmailReport(text: string, address: (value: string) => string | undefined): ReportedRecipient[] {
  const body = text.split(/^--- Below this line is a copy of the message\./im)[0] ?? text;
  return [...body.matchAll(/^<([^>\s]+@[^>\s]+)>:[ \t]*\r?\n([\s\S]*?)(?=\r?\n\r?\n|$)/gm)].flatMap((m) => {
    const recipient = address(m[1] ?? '');
    const why = (m[2] ?? '').replace(/\s+/g, ' ').trim();
    const status = permanentStatus(why);
    return recipient && status ? [{ type: 'bounced' as const, recipient, reason: `${status} ${why}`.slice(0, 300) }] : [];
  });
}
