// Provider replies that mean "this mailbox's sending quota is used up", whatever their reply code: the
// message is fine and goes out once the quota window frees, so it is deferred, never bounced. Declared
// once, with where each comes from.
//
// Microsoft 365: 554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException (the 10,000
//   recipients per 24 h, or the per-minute submission limit), learn.microsoft.com, "Exchange Online
//   limits" and "Fix email delivery issues for error code 5.2.0".
// Google Workspace: 550 5.4.5 Daily user sending limit exceeded (and "Daily SMTP relay limit exceeded"),
//   support.google.com/a/answer/166852 ("Gmail sending limits in Google Workspace") and /a/answer/3726730.
// Amazon SES: 454 Throttling failure: Daily message quota exceeded, docs.aws.amazon.com/ses, "SMTP
//   response codes" (a 4xx already: listed so the reply says what it is).
const QUOTA_REPLIES: readonly RegExp[] = [/SubmissionQuotaExceeded/i, /\b5\.4\.5\b.*\bDaily (user sending|SMTP relay) limit exceeded/i, /Daily message quota exceeded/i];

/** The upstream's reply says its mailbox's quota is used up (a deferral, not a bounce). */
export function isQuotaReply(said: string): boolean {
  return QUOTA_REPLIES.some((pattern) => pattern.test(said));
}
