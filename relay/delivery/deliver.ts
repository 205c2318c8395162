// The delivery edge: one entry point whatever the upstream kind.
import type { Upstream, UpstreamHostPolicy } from '../../config/types.js';
import { isAscii } from 'node:buffer';
import { Replies, type SmtpReply } from '../errors.js';
import type { UpstreamCapabilities } from './capabilities.js';
import { replyForError } from './classify.js';
import type { DeliveryResult, Envelope, MessageSource } from '../types.js';
import { crlfOnly } from '../line-ends.js';
import { isInMemory, joinedIfSmall, partsOf } from '../message-bytes.js';
import { checkUpstreamHost, pinnedTo, policyApplies } from './host-policy.js';
import { deliverToMaildir } from './maildir.js';
import type { UpstreamPools } from './pools.js';
import { sendViaSmtp } from './smtp.js';

export interface OutboundMessage {
  readonly source: MessageSource;
  /** Any byte over 127 anywhere in the message: the upstream must offer 8BITMIME. */
  readonly eightBit: boolean;
  /** Header lines (CRLF-ended) for this upstream only, sent before the message: outside any signature. */
  readonly headerPrefix?: Buffer;
  /** Every line end of the message is CRLF, as the intake checked: not looked for again on the way out. */
  readonly crlfOnly?: boolean;
}

/** What delivery keeps of the upstreams between messages: connection pools, and what each upstream can do. */
export interface UpstreamAccess {
  readonly pools: UpstreamPools;
  readonly capabilities: UpstreamCapabilities;
}

export async function deliver(
  upstreams: UpstreamAccess,
  upstream: Upstream,
  envelope: Envelope,
  message: OutboundMessage,
  hostPolicy: UpstreamHostPolicy,
): Promise<DeliveryResult> {
  if (upstream.kind === 'maildir') return deliverToMaildir(upstream, envelope, message.source);
  const all = (reply: SmtpReply, status: 'temp' | 'perm'): DeliveryResult => ({
    upstream: upstream.name,
    outcomes: envelope.rcptTo.map((recipient) => ({ recipient, status, reply })),
  });
  let target = upstream;
  const policy = upstream.hostPolicy ?? hostPolicy;
  if (upstream.owner === 'tenant' && policyApplies(policy)) {
    const checked = await checkUpstreamHost(upstream.host, policy, upstream.port);
    if (!checked.ok) return all(Replies.upstreamHostForbidden(upstream.name, checked.reason), 'temp');
    target = pinnedTo(upstream, checked.address);
  }
  const utf8Envelope = !isAscii(Buffer.from(envelope.mailFrom + envelope.rcptTo.join('')));
  if (message.eightBit || utf8Envelope) {
    let extensions: ReadonlySet<string>;
    try {
      extensions = await upstreams.capabilities.get(target);
    } catch (err) {
      return all(replyForError(upstream.name, err as Error), 'temp');
    }
    // Refused, not mangled: a message this upstream cannot carry will not become carriable by retrying.
    if (message.eightBit && !extensions.has('8BITMIME')) return all(Replies.upstreamNo8BitMime(upstream.name), 'perm');
    if (utf8Envelope && !extensions.has('SMTPUTF8')) return all(Replies.upstreamNoSmtpUtf8(upstream.name), 'perm');
  }
  const source = message.headerPrefix ? withPrefix(message.source, message.headerPrefix) : message.source;
  const checked = message.crlfOnly === true && (!message.headerPrefix || crlfOnly(message.headerPrefix, false));
  return sendViaSmtp(upstreams.pools, target, envelope, source, { eightBit: message.eightBit, crlfOnly: checked });
}

function withPrefix(source: MessageSource, prefix: Buffer): MessageSource {
  // A small message stays one buffer (one write to the upstream); a large one is not copied behind the prefix.
  return isInMemory(source) ? joinedIfSmall([prefix, ...partsOf(source)]) : { path: source.path, prefix };
}
