// The message stage: bytes in, bytes out. Only the header lines it means to change change; the body is
// carried byte for byte. Order matters: every rewrite first, the trace header, then the DKIM signature
// over the final result.
import { Headers } from '@zone-eu/mailsplit';
import { domainOf } from '../../config/directory.js';
import type { Config } from '../../config/types.js';
import { Replies, type SmtpReply } from '../errors.js';
import type { RouteDecision } from '../types.js';
import { formatMailbox, type Mailbox, parseMailbox } from './addresses.js';
import { signDkim } from './dkim.js';
import { splitMessage } from './split.js';
import { receivedValue, type TraceInfo } from './trace.js';

/** More Received headers than this and the message is looping between relays (RFC 5321 6.3). */
export const MAX_RECEIVED_HEADERS = 50;

export type TransformResult =
  | { readonly kind: 'ok'; readonly bytes: Buffer; readonly warnings: readonly string[] }
  | { readonly kind: 'refuse'; readonly reply: SmtpReply; readonly reason: string };

export async function transformMessage(message: Buffer, decision: RouteDecision, config: Config, trace: TraceInfo): Promise<TransformResult> {
  const { header, body } = splitMessage(message);
  const headers = new Headers(header);

  if (headers.get('received').length > MAX_RECEIVED_HEADERS) {
    return { kind: 'refuse', reply: Replies.mailLoop(MAX_RECEIVED_HEADERS), reason: 'too many Received headers' };
  }
  const fromLines = headers.get('from');
  if (fromLines.length > 1) {
    return { kind: 'refuse', reply: Replies.severalFromHeaders(fromLines.length), reason: `${fromLines.length} From headers` };
  }

  const finalFrom = rewriteIdentity(headers, decision, config);
  for (const name of config.message.removeHeaders) headers.remove(name);
  if (config.message.traceHeader) {
    headers.update(config.message.traceHeader, `tenant=${decision.tenant?.id ?? 'none'}; upstream=${decision.route.upstream.name}`);
  }
  // Already folded where it should be; add() would refold it at any space.
  headers.addFormatted('Received', `Received: ${receivedValue(trace)}`, 0);
  const bytes = Buffer.concat([headers.build(), body]);

  return sign(bytes, finalFrom, decision, config);
}

/** Applies From, Reply-To and the original-From header; returns the From the message leaves with. */
function rewriteIdentity(headers: Headers, decision: RouteDecision, config: Config): Mailbox | undefined {
  const original = parseMailbox(headers.getFirst('from'));
  const wanted = decision.rewrites.from;
  const from = wanted && (wanted.address ?? original?.address) ? { name: wanted.name ?? original?.name ?? '', address: wanted.address ?? original?.address ?? '' } : original;
  if (wanted && from) headers.update('From', formatMailbox('From', from));

  const fromChanged = original !== undefined && from !== undefined && original.address.toLowerCase() !== from.address.toLowerCase();
  const policy = config.message;
  if (fromChanged && policy.originalFromHeader) headers.update(policy.originalFromHeader, formatMailbox('From', original));

  const hasReplyTo = headers.get('reply-to').length > 0;
  const replyTo = decision.rewrites.replyTo;
  if (replyTo !== undefined) {
    if (!hasReplyTo || policy.overrideReplyTo) headers.update('Reply-To', formatMailbox('Reply-To', { name: '', address: replyTo }));
  } else if (fromChanged && policy.replyToOriginalFrom && !hasReplyTo) {
    // Replies still reach the person or system that wrote the message.
    headers.update('Reply-To', formatMailbox('Reply-To', original));
  }
  return from;
}

async function sign(bytes: Buffer, from: Mailbox | undefined, decision: RouteDecision, config: Config): Promise<TransformResult> {
  const plan = decision.dkim;
  if (plan.kind === 'off') return { kind: 'ok', bytes, warnings: [] };
  try {
    if (!from) throw new Error('the message has no From header to sign');
    const domain = plan.signingDomain ?? domainOf(from.address);
    const signature = await signDkim(bytes, domain, plan.selector, plan.key);
    return { kind: 'ok', bytes: Buffer.concat([Buffer.from(signature.header, 'latin1'), bytes]), warnings: [] };
  } catch (err) {
    const why = (err as Error).message;
    switch (config.dkim.onFailure) {
      case 'tempfail':
        return { kind: 'refuse', reply: Replies.dkimFailedTemporary, reason: why };
      case 'reject':
        return { kind: 'refuse', reply: Replies.dkimFailedPermanent, reason: why };
      default:
        return { kind: 'ok', bytes, warnings: [`sent unsigned: ${why}`] };
    }
  }
}
