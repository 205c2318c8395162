// The message stage: bytes in, bytes out. Only the header lines it means to change change; the body is
// carried byte for byte. Order matters: every rewrite first, the trace header, then the DKIM signature
// over the final result.
import { Readable } from 'node:stream';
import { domainOf } from '../../config/directory.js';
import { ownsAddress } from '../../config/ownership.js';
import type { Config, Tenant } from '../../config/types.js';
import { Replies, sanitizeUpstreamText, type SmtpReply } from '../errors.js';
import type { HeaderFromRule, RouteDecision } from '../types.js';
import { agentAddresses, formatMailbox, type Mailbox, parseMailboxes } from './addresses.js';
import { signDkim } from './dkim.js';
import { HeaderBlock } from './header-block.js';
import { splitMessage } from './split.js';
import { receivedValue, type TraceInfo } from './trace.js';

/** More Received headers than this and the message is looping between relays (RFC 5321 6.3). */
export const MAX_RECEIVED_HEADERS = 50;

/**
 * Authors a From may name. Every one is checked against the tenants, and one the relay does not know may
 * cost a question to the platform (inbound/header-from.ts): a long list is refused before it is asked about.
 */
export const MAX_FROM_ADDRESSES = 10;

export type Refusal = { readonly kind: 'refused'; readonly reply: SmtpReply; readonly reason: string };

export type TransformResult = { readonly kind: 'ok'; readonly bytes: Buffer; readonly warnings: readonly string[] } | Refusal;

/** Where the body comes from: its bytes (in the chunks they arrived in), or a fresh stream of them each time (a spool file). */
export type BodySource = readonly Buffer[] | (() => Readable);

export interface PreparedHead {
  readonly kind: 'ok';
  /** DKIM-Signature lines (or nothing), then the rewritten header block: the body follows unchanged. */
  readonly head: Buffer;
  /** The Message-ID header's value, unfolded and bounded: what the platform knows the message by. */
  readonly messageId?: string;
  readonly warnings: readonly string[];
}

/** The whole message in memory (pass-through). */
export async function transformMessage(message: Buffer, decision: RouteDecision, config: Config, trace: TraceInfo): Promise<TransformResult> {
  const { header, body } = splitMessage(message);
  const prepared = await prepareHead(header, [body], decision, config, trace);
  if (prepared.kind !== 'ok') return prepared;
  return { kind: 'ok', bytes: Buffer.concat([prepared.head, body]), warnings: prepared.warnings };
}

/** Rewrites the header block and signs header + body; the body is only read, never changed or kept. */
export async function prepareHead(header: Buffer, body: BodySource, decision: RouteDecision, config: Config, trace: TraceInfo): Promise<PreparedHead | Refusal> {
  const rewritten = rewriteHeader(header, decision, config, trace);
  if (rewritten.kind !== 'ok') return rewritten;
  const signed = await sign(rewritten, body, decision, config);
  if (signed.kind !== 'ok') return signed;
  const messageId = rewritten.messageId;
  return { kind: 'ok', head: Buffer.concat([signed.signature, rewritten.header]), ...(messageId ? { messageId } : {}), warnings: signed.warnings };
}

/** The rewritten block, and the mailboxes of the From it leaves with (the first is the author it is signed as). */
type Rewritten = { kind: 'ok'; header: Buffer; authors: readonly Mailbox[]; messageId?: string };

/** An address from the message, as a log line or warning names it: one printable line, bounded. */
const shown = (address: string) => sanitizeUpstreamText(address, 320);

function rewriteHeader(header: Buffer, decision: RouteDecision, config: Config, trace: TraceInfo): Rewritten | Refusal {
  const headers = HeaderBlock.parse(header);
  if (headers.count('received') > MAX_RECEIVED_HEADERS) {
    return { kind: 'refused', reply: Replies.mailLoop(MAX_RECEIVED_HEADERS), reason: 'too many Received headers' };
  }
  const fromLines = headers.count('from');
  if (fromLines > 1) {
    return { kind: 'refused', reply: Replies.severalFromHeaders(fromLines), reason: `${fromLines} From headers` };
  }

  const authors = parseMailboxes(headers.first('from'));
  if (authors.length > MAX_FROM_ADDRESSES) {
    return { kind: 'refused', reply: Replies.tooManyFromAddresses(authors.length, MAX_FROM_ADDRESSES), reason: `From names ${authors.length} addresses` };
  }
  const original = authors[0];
  const refusal = checkHeaderFrom(authors.map((a) => a.address), decision.headerFrom) ?? checkAgents(headers, decision.headerFrom);
  if (refusal) return refusal;
  const from = rewriteIdentity(headers, original, decision, config);
  // A From the tenant's identity set is that one mailbox; otherwise it leaves naming what it came with.
  const leaving = decision.rewrites.from && from ? [from] : authors;
  for (const name of config.message.removeHeaders) headers.remove(name);
  if (config.message.traceHeader) {
    headers.set(config.message.traceHeader, `tenant=${decision.tenant?.id ?? 'none'}; upstream=${decision.route.upstream.name}`);
  }
  // Already folded where it should be; set() would refold it at any space.
  headers.prepend('Received', `Received: ${receivedValue(trace)}`);
  const messageId = headers.first('message-id').replace(/\s+/g, ' ').trim().slice(0, 998);
  return { kind: 'ok', header: headers.toBuffer(), authors: leaving, ...(messageId ? { messageId } : {}) };
}
/**
 * A tenant's message may not wear another tenant's From, whoever sent it (AUTH or a trusted network):
 * that is the impersonation isolation exists to stop. Every address the From names is checked (a reader
 * sees them all, and a group's members too). With inbound.checkHeaderFrom each must be the tenant's own.
 * Mail of no tenant is not checked here; it is never signed as its From (decide.ts).
 */
function checkHeaderFrom(addresses: readonly string[], rule: HeaderFromRule | undefined): Refusal | undefined {
  if (!rule) return undefined;
  if (addresses.length === 0 && rule.ownOnly) return { kind: 'refused', reply: Replies.headerFromNotOfTenant(rule.tenant.id), reason: 'the message has no From address' };
  for (const address of addresses) {
    if (ownsAddress(rule.tenant, address)) continue;
    const owner = otherOwnerOf(address, rule);
    if (owner) {
      return { kind: 'refused', reply: Replies.headerFromOfOtherTenant(rule.tenant.id), reason: `header From ${shown(address)} belongs to tenant ${owner.id}` };
    }
    if (rule.ownOnly) return { kind: 'refused', reply: Replies.headerFromNotOfTenant(rule.tenant.id), reason: `header From ${shown(address)} is not one of the tenant's addresses` };
  }
  return undefined;
}

/**
 * Sender and the Resent- headers show beside the From ("on behalf of", "resent by"): a tenant's message may
 * not name another tenant there either. Unlike the From, an address no tenant claims is let through
 * whatever inbound.checkHeaderFrom says (a list server, a ticket system), and the signature does not depend
 * on them (DMARC reads the From only).
 */
function checkAgents(headers: HeaderBlock, rule: HeaderFromRule | undefined): Refusal | undefined {
  if (!rule) return undefined;
  const agents = agentAddresses(headers, MAX_FROM_ADDRESSES);
  if (agents.length > MAX_FROM_ADDRESSES) {
    return { kind: 'refused', reply: Replies.tooManySenderAddresses(MAX_FROM_ADDRESSES), reason: `Sender and Resent- headers name more than ${MAX_FROM_ADDRESSES} addresses` };
  }
  for (const { header, address } of agents) {
    const owner = ownsAddress(rule.tenant, address) ? undefined : otherOwnerOf(address, rule);
    if (owner) {
      return { kind: 'refused', reply: Replies.senderHeaderOfOtherTenant(header, rule.tenant.id), reason: `${header} ${shown(address)} belongs to tenant ${owner.id}` };
    }
  }
  return undefined;
}

/** Another tenant that claims this address, in the order of identification: an exact address claim outranks a domain claim. */
function otherOwnerOf(address: string, rule: HeaderFromRule): Tenant | undefined {
  const owner = rule.tenants.byAddress(address) ?? rule.tenants.byDomain(domainOf(address))?.tenant;
  return owner && owner.id !== rule.tenant.id ? owner : undefined;
}

/** Applies From, Reply-To and the original-From header to a message from `original`; returns the From it leaves with. */
function rewriteIdentity(headers: HeaderBlock, original: Mailbox | undefined, decision: RouteDecision, config: Config): Mailbox | undefined {
  const wanted = decision.rewrites.from;
  const from = wanted && (wanted.address ?? original?.address) ? { name: wanted.name ?? original?.name ?? '', address: wanted.address ?? original?.address ?? '' } : original;
  if (wanted && from) headers.set('From', formatMailbox('From', from));

  const fromChanged = original !== undefined && from !== undefined && original.address.toLowerCase() !== from.address.toLowerCase();
  const policy = config.message;
  if (fromChanged && policy.originalFromHeader) headers.set(policy.originalFromHeader, formatMailbox('From', original));

  const hasReplyTo = headers.count('reply-to') > 0;
  const replyTo = decision.rewrites.replyTo;
  if (replyTo !== undefined) {
    if (!hasReplyTo || policy.overrideReplyTo) headers.set('Reply-To', formatMailbox('Reply-To', { name: '', address: replyTo }));
  } else if (fromChanged && policy.replyToOriginalFrom && !hasReplyTo) {
    // Replies still reach the person or system that wrote the message.
    headers.set('Reply-To', formatMailbox('Reply-To', original));
  }
  return from;
}

type Signed = { kind: 'ok'; signature: Buffer; warnings: readonly string[] } | Refusal;

async function sign({ header, authors }: Rewritten, body: BodySource, decision: RouteDecision, config: Config): Promise<Signed> {
  const plan = decision.dkim;
  const none = Buffer.alloc(0);
  if (plan.kind === 'off') return { kind: 'ok', signature: none, warnings: [] };
  // Not a failure: the relay vouches only for what the tenant owns, every author the From names; the
  // message goes as it came.
  const owner = plan.fromOwner;
  const stranger = owner && authors.find((a) => !ownsAddress(owner, a.address));
  if (owner && stranger) return { kind: 'ok', signature: none, warnings: [`sent unsigned: the From ${shown(stranger.address)} is not an address of tenant ${owner.id}`] };
  const [from] = authors;
  try {
    if (!from) throw new Error('the message has no From header to sign');
    const domain = plan.signingDomain ?? domainOf(from.address);
    const message = typeof body === 'function' ? concatStreams(header, body()) : Buffer.concat([header, ...body]);
    // The relay's own headers speak for it as much as From does: an instance changed or added later must break the signature.
    const own = [config.message.originalFromHeader, config.message.traceHeader].filter((h): h is string => h !== undefined);
    const signature = await signDkim(message, domain, plan.selector, plan.key, own);
    return { kind: 'ok', signature: Buffer.from(signature.header, 'latin1'), warnings: [] };
  } catch (err) {
    const why = (err as Error).message;
    switch (config.dkim.onFailure) {
      case 'tempfail':
        return { kind: 'refused', reply: Replies.dkimFailedTemporary, reason: why };
      case 'reject':
        return { kind: 'refused', reply: Replies.dkimFailedPermanent, reason: why };
      default:
        return { kind: 'ok', signature: none, warnings: [`sent unsigned: ${why}`] };
    }
  }
}

function concatStreams(head: Buffer, rest: Readable): Readable {
  return Readable.from(
    (async function* () {
      yield head;
      yield* rest;
    })(),
  );
}
