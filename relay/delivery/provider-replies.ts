// Provider replies that say "slow down" or "this mailbox's quota is used up", whatever their reply code:
// the message is fine. A quota reply is deferred, never bounced; both make the scheduler pace that
// mailbox (queue/pacing.ts). Declared once, with where each comes from.
//
// quota
//   Microsoft 365: 554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException (10,000
//     recipients per 24 h, or the per-minute submission limit); learn.microsoft.com, "Exchange Online
//     limits" and "Fix email delivery issues for error code 5.2.0".
//   Google Workspace: 550 5.4.5 Daily user sending limit exceeded (and Daily SMTP relay limit exceeded);
//     support.google.com/a/answer/166852 and /a/answer/3726730.
//   Amazon SES: 454 Throttling failure: Daily message quota exceeded; docs.aws.amazon.com/ses, "SMTP
//     response codes".
// throttle
//   Google: 421 4.7.28 (rate limited: unusual rate of mail), 421 4.7.0 ... rate limit / Try again later;
//     support.google.com/a/answer/3726730.
//   Microsoft 365: 4.7.x "throttl..." and 451 4.7.500-699 (server busy, access denied for now);
//     learn.microsoft.com, "Email non-delivery reports in Exchange Online".
// Not here, though they can mean it: 450 4.2.1 (one recipient receiving too fast: not the sender's pace)
// and 421 4.3.2 (any server shutting down, a draining tenant-relay too).
//   Amazon SES: 454 Throttling failure: Maximum sending rate exceeded; docs.aws.amazon.com/ses.
export type ProviderSignal = 'quota' | 'throttle';

const REPLIES: readonly { readonly pattern: RegExp; readonly signal: ProviderSignal }[] = [
  { pattern: /SubmissionQuotaExceeded/i, signal: 'quota' },
  { pattern: /\b5\.4\.5\b.*\bDaily (user sending|SMTP relay) limit exceeded/i, signal: 'quota' },
  { pattern: /Daily message quota exceeded/i, signal: 'quota' },
  { pattern: /^4\d\d[ -]4\.7\.28\b/, signal: 'throttle' },
  { pattern: /^421[ -]4\.7\.0\b.*(rate limit|try again later)/i, signal: 'throttle' },
  { pattern: /^4\d\d[ -]4\.7\.\d{1,3}\b.*throttl/i, signal: 'throttle' },
  { pattern: /^451[ -]4\.7\.(5\d\d|6\d\d)\b/, signal: 'throttle' },
  { pattern: /Maximum sending rate exceeded/i, signal: 'throttle' },
];

/** What the upstream's reply says of its mailbox's pace, if anything. */
export function providerSignalOf(said: string): ProviderSignal | undefined {
  return REPLIES.find((r) => r.pattern.test(said))?.signal;
}

/** The upstream's reply says its mailbox's quota is used up (a deferral, not a bounce). */
export function isQuotaReply(said: string): boolean {
  return providerSignalOf(said) === 'quota';
}
