// What a pass-through client hears for each mix of per-recipient outcomes: 250 only when every recipient
// was accepted; otherwise the worst class wins, so nothing undelivered is reported as delivered.
import t from 'tap';
import { Replies } from '../relay/errors.js';
import { passthroughReply } from '../relay/inbound/passthrough-reply.js';
import type { RecipientOutcome } from '../relay/types.js';

const sent = (r: string): RecipientOutcome => ({ recipient: r, status: 'sent', reply: Replies.delivered('up') });
const temp = (r: string): RecipientOutcome => ({ recipient: r, status: 'temp', reply: Replies.upstreamTempFail('up', '450 busy') });
const perm = (r: string): RecipientOutcome => ({ recipient: r, status: 'perm', reply: Replies.upstreamRejected('up', 550, '550 5.1.1 gone', '5.1.1') });

const cases: [string, RecipientOutcome[], string, RegExp?][] = [
  ['all accepted', [sent('a'), sent('b')], 'delivered'],
  ['none accepted, deferred: the first recipient’s own reply', [temp('a'), perm('b')], 'upstream-temp-fail'],
  ['none accepted, refused: the upstream’s 5xx', [perm('a'), perm('b')], 'upstream-rejected'],
  ['some accepted, some deferred: 451, the client retries', [sent('a'), temp('b'), perm('c')], 'partly-deferred', /Only 1 of 3 .*b: 451, c: 550/],
  ['some accepted, the rest refused for good: 554, no retry', [sent('a'), perm('b')], 'partly-rejected', /Only 1 of 2 .*refused: b: 550/],
];

for (const [name, outcomes, id, text] of cases) {
  t.test(name, async (t) => {
    const reply = passthroughReply({ upstream: 'up', outcomes });
    t.equal(reply.id, id);
    if (text) t.match(reply.text, text);
  });
}
