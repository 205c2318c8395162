// What the client hears after forwarding in session. 250 only when every recipient was accepted upstream;
// otherwise the worst class wins so that nothing undelivered is ever reported as delivered:
// - nothing accepted: the first recipient's own reply (451 4.4.x to retry, 5xx not to);
// - some accepted, some deferred: 451, the client retries and the accepted ones may get a duplicate;
// - some accepted, the rest refused for good: 554 naming the refused, so the client does not retry.
import { Replies, type SmtpReply } from '../errors.js';
import type { DeliveryResult } from '../types.js';

export function passthroughReply(result: DeliveryResult): SmtpReply {
  const { outcomes } = result;
  const sent = outcomes.filter((o) => o.status === 'sent');
  const temp = outcomes.filter((o) => o.status === 'temp');
  const perm = outcomes.filter((o) => o.status === 'perm');
  const [firstTemp] = temp;
  const [firstPerm] = perm;
  if (!firstTemp && !firstPerm) return Replies.delivered(result.upstream);
  if (sent.length === 0) return (firstTemp ?? firstPerm)?.reply ?? Replies.localError;
  const list = (failed: typeof outcomes) => failed.map((o) => `${o.recipient}: ${o.reply.code}`).join(', ');
  if (firstTemp) return Replies.partlyDeferred(sent.length, outcomes.length, list([...temp, ...perm]));
  return Replies.partlyRejected(sent.length, outcomes.length, list(perm));
}
