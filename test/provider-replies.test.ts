// Which provider replies say "slow down" or "quota used up" (delivery/provider-replies.ts), and what the
// relay answers for each: every row of the table, and look-alikes that are neither.
import t from 'tap';
import { replyForError } from '../relay/delivery/classify.js';
import { providerSignalOf } from '../relay/delivery/provider-replies.js';

const cases: [string, string, 'quota' | 'throttle' | undefined, string][] = [
  ['Microsoft daily quota', '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message', 'quota', 'upstream-quota-exceeded'],
  ['Gmail daily sending limit', '550 5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to https://support.google.com/a/answer/166852', 'quota', 'upstream-quota-exceeded'],
  ['Gmail SMTP relay limit', '550 5.4.5 Daily SMTP relay limit exceeded for customer', 'quota', 'upstream-quota-exceeded'],
  ['SES daily quota', '454 Throttling failure: Daily message quota exceeded.', 'quota', 'upstream-quota-exceeded'],
  ['Gmail unusual rate', '421 4.7.28 [203.0.113.5] Gmail has detected an unusual rate of unsolicited mail', 'throttle', 'upstream-throttled'],
  ['Gmail rate limit', '421 4.7.0 Try again later, closing connection. (rate limit)', 'throttle', 'upstream-throttled'],
  ['Microsoft throttling', '451 4.7.0 Temporary server error. Please try again later. PRX5 ThrottlingPolicy', 'throttle', 'upstream-throttled'],
  ['Microsoft server busy', '451 4.7.500 Server busy. Please try again later from [203.0.113.5]', 'throttle', 'upstream-throttled'],
  ['SES sending rate', '454 Throttling failure: Maximum sending rate exceeded.', 'throttle', 'upstream-throttled'],
  ['a full mailbox is not a pace', '452 4.2.2 The email account that you tried to reach is over quota', undefined, 'upstream-temp-fail'],
  ['one recipient busy is not the sender\'s pace', '450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages', undefined, 'upstream-temp-fail'],
  ['a server shutting down is not a pace', '421 4.3.2 Service not available, closing transmission channel', undefined, 'upstream-temp-fail'],
  ['an unknown user is a bounce', '550 5.1.1 The email account that you tried to reach does not exist', undefined, 'upstream-rejected'],
];

for (const [name, said, signal, id] of cases) {
  t.test(name, async (t) => {
    t.equal(providerSignalOf(said), signal);
    const code = Number(said.slice(0, 3));
    t.equal(replyForError('up', Object.assign(new Error(said), { responseCode: code, response: said })).id, id);
  });
}
