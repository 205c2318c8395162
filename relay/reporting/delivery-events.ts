// Delivery events: what became of each recipient of each message, as the platform's webhook receives them
// and the trace keeps them. Queue mode: `accepted` when the message is on disk and the client heard 250,
// then per attempt `delivered`, `deferred` (tried again at nextAttemptAt), `bounced` (a 5xx: a DSN goes to
// the sender) or `expired` (still failing at delivery.retry.maxLifetimeHours). Pass-through: one event per
// recipient with what the upstream said while the client waited (`deferred` there means the client was
// told to try again; the relay keeps nothing). A person's hold or delete (the mail console) is `held` or
// `deleted`.
import type { DeliveryEventType } from '../../config/types.js';
import { formatReply, Replies } from '../errors.js';
import { newNonce } from '../ids.js';
import { isoTime } from '../iso-time.js';
import type { Accepted, Attempted, Handled, Held, MessageFacts, Reported } from '../observe/outcomes.js';
import type { DeliveryMode, RecipientOutcome, UpstreamReply } from '../types.js';

export interface DeliveryEvent {
  /** Unique and stable: a receiver that sees one twice (delivery is at least once) drops the second. */
  readonly id: string;
  readonly type: DeliveryEventType;
  /** ISO 8601, UTC. */
  readonly time: string;
  /** The relay's id for the message ("queued as ..."). */
  readonly queueId: string;
  /** The Message-ID header's value, or null when the message had none. */
  readonly messageId: string | null;
  readonly tenant: string | null;
  readonly mode: DeliveryMode;
  /** The envelope sender as it went out ('' for the null sender). */
  readonly from: string;
  readonly recipient: string;
  /** The upstream of the attempt; null for `accepted`. */
  readonly upstream: string | null;
  /** 0 for `accepted`, then 1, 2, ... */
  readonly attempt: number;
  readonly acceptedAt: string;
  /** The relay's own reply for this recipient (to the client, or recorded in the queue). */
  readonly reply: string;
  /** What the upstream itself answered, when it answered (with its queue id when it named one). */
  readonly upstreamReply: UpstreamReply | null;
  /** `deferred` (and `held`) in queue mode: when the next attempt is due. */
  readonly nextAttemptAt: string | null;
  /** The message is a delivery status notification the relay made (to a sender of a bounced message). */
  readonly dsn: boolean;
}

/** `accepted`, one per recipient: queue mode only (pass-through has accepted nothing until the upstream has). */
export function acceptedEvents(e: Accepted): DeliveryEvent[] {
  if (e.message.mode !== 'queue') return [];
  return e.envelope.rcptTo.map((recipient, i) => ({
    id: `${e.message.id}.0.${i}`,
    type: 'accepted',
    ...ofMessage(e.message, e.message.acceptedAt),
    recipient,
    upstream: null,
    attempt: 0,
    reply: formatReply(Replies.queued(e.message.id)),
    upstreamReply: null,
    nextAttemptAt: null,
  }));
}

/** `held`, one per recipient still to deliver: the message waits for a sending limit, until `nextAttemptAt`. */
export function heldEvents(e: Held): DeliveryEvent[] {
  const nonce = newNonce();
  return e.recipients.map((recipient, i) => ({
    id: `${e.message.id}.h.${nonce}.${i}`,
    type: 'held',
    ...ofMessage(e.message, e.at),
    recipient,
    upstream: null,
    attempt: 0,
    reply: formatReply(Replies.heldByLimit(e.reason)),
    upstreamReply: null,
    nextAttemptAt: isoTime(e.until),
  }));
}

/** A person acted on a queued message: `held` when held by hand (no next attempt until released), `deleted`. */
export function handledEvents(e: Handled): DeliveryEvent[] {
  if (e.action !== 'hold' && e.action !== 'delete') return [];
  const nonce = newNonce();
  return e.recipients.map((recipient, i) => ({
    id: `${e.message.id}.${e.action}.${nonce}.${i}`,
    type: e.action === 'hold' ? 'held' : 'deleted',
    ...ofMessage(e.message, e.at),
    recipient,
    upstream: null,
    attempt: 0,
    reply: formatReply(e.action === 'hold' ? Replies.heldByHand(e.by) : Replies.deletedByHand(e.by)),
    upstreamReply: null,
    nextAttemptAt: null,
  }));
}

/** What a provider's webhook told of one recipient, as a delivery event of its message. */
export function reportedEvents(e: Reported): DeliveryEvent[] {
  const reply = e.type === 'delivered' ? Replies.providerDelivered(e.provider, e.reason) : e.type === 'bounced' ? Replies.providerBounced(e.provider, e.reason) : Replies.providerComplained(e.provider, e.reason);
  return [
    {
      id: `${e.message.id}.p.${newNonce()}`,
      type: e.type,
      ...ofMessage(e.message, e.at),
      recipient: e.recipient,
      upstream: e.provider,
      attempt: 0,
      reply: formatReply(reply),
      upstreamReply: null,
      nextAttemptAt: null,
    },
  ];
}

/**
 * One per recipient the attempt was for. Each id carries a nonce of this attempt's: a relay killed after
 * telling of an attempt but before recording it makes the same attempt again, and its events must not
 * reuse the ids of the ones already told (a platform that drops duplicates by id would drop them).
 */
export function attemptEvents(e: Attempted): DeliveryEvent[] {
  const nonce = newNonce();
  return e.outcomes.map((o, i) => ({
    id: `${e.message.id}.${e.attempt}.${nonce}.${i}`,
    type: typeOf(o, e.expired),
    ...ofMessage(e.message, e.at),
    recipient: o.recipient,
    upstream: e.upstream,
    attempt: e.attempt,
    reply: formatReply(o.reply),
    upstreamReply: o.upstreamReply ?? null,
    nextAttemptAt: o.status === 'temp' && e.nextAttemptAt !== undefined ? isoTime(e.nextAttemptAt) : null,
  }));
}

/** What every event of a message's life says about the message itself, at `at`. */
function ofMessage(m: MessageFacts, at: number) {
  return {
    time: isoTime(at),
    queueId: m.id,
    messageId: m.messageId ?? null,
    tenant: m.tenant,
    mode: m.mode,
    from: m.mailFrom,
    acceptedAt: isoTime(m.acceptedAt),
    dsn: m.dsn === true,
  };
}

function typeOf(o: RecipientOutcome, expired: boolean): DeliveryEventType {
  if (o.suppressed) return 'suppressed';
  if (o.status === 'sent') return 'delivered';
  if (o.status === 'perm') return 'bounced';
  return expired ? 'expired' : 'deferred';
}
