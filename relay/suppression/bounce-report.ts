// A bounce or complaint that came back by mail: a delivery status notification (RFC 3464: a
// multipart/report whose message/delivery-status part has, per recipient, Final-Recipient, Action and
// Status) or an abuse report (RFC 5965: message/feedback-report with Feedback-Type and
// Original-Rcpt-To). Read as text, bounded: only those fields are looked at. A report that is neither is
// not one the relay acts on.
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
