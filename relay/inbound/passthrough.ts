// Pass-through, after the intake: the message is forwarded while the client waits, and the upstream's
// answer, per recipient, decides what the client hears (passthrough-reply.ts). Nothing is queued; the
// client keeps the responsibility to retry.
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { type UpstreamAccess, deliver } from '../delivery/deliver.js';
import { Replies, type SmtpReply } from '../errors.js';
import { suppressedAmong, suppressGone } from '../suppression/apply.js';
import { lengthOf } from '../message-bytes.js';
import { postmarkLinkHeader } from '../message/postmark-link.js';
import type { SuppressionStore } from '../suppression/store.js';
import { type MessageFacts, messageIdOf, type Outcomes } from '../observe/outcomes.js';
import type { DeliveryResult, MessageSource } from '../types.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';
import { intake, type Transaction } from './intake.js';
import { passthroughReply } from './passthrough-reply.js';
import type { Staging } from './staging.js';

export interface PassthroughDeps {
  readonly staging: Staging;
  readonly upstreams: UpstreamAccess;
  readonly outcomes: Outcomes;
  /** The platform's tenants: the owner of a header From only they know. */
  readonly platform?: () => PlatformTenants | undefined;
  /** Addresses each tenant's mail does not go to. */
  readonly suppression?: SuppressionStore;
}

export type Forwarded =
  | { readonly kind: 'refused'; readonly reply: SmtpReply; readonly reason: string }
  | { readonly kind: 'forwarded'; readonly reply: SmtpReply; readonly result: DeliveryResult; readonly bytes: number; readonly warnings: readonly string[] };

export async function forwardInSession(data: Readable, tx: Transaction, deps: PassthroughDeps): Promise<Forwarded> {
  const received = await intake(data, tx, deps.staging, deps.platform?.());
  if (received.kind === 'refused') return received;
  const { message } = received;
  const tenant = tx.decision.tenant?.id ?? null;
  const staged: string[] = [];
  try {
    let source: MessageSource;
    let bytes: number;
    if (message.bytes) {
      source = message.bytes;
      bytes = lengthOf(message.bytes);
    } else {
      // The upstream may need it twice (a pool resends on another connection): a file, not a stream.
      const written = await deps.staging.write(`${tx.id}.out`, message.parts);
      staged.push(written.path);
      source = { path: written.path };
      bytes = written.size;
    }
    const facts: MessageFacts = { id: tx.id, tenant, mode: 'passthrough', mailFrom: tx.envelope.mailFrom, acceptedAt: Date.now(), ...messageIdOf(message) };
    deps.outcomes.emit('accepted', { message: facts, envelope: tx.envelope, header: message.head, size: bytes, decision: tx.decision.reason });
    const sendStarted = performance.now();
    // Suppressed recipients (action report; refuse has refused them at RCPT) are skipped and reported; the
    // client hears about the others.
    const suppressed = await suppressedAmong(deps.suppression, tx.config, tenant, tx.envelope.rcptTo, Date.now());
    const rcptTo = suppressed.length > 0 ? tx.envelope.rcptTo.filter((r) => !suppressed.some((s) => s.recipient === r)) : tx.envelope.rcptTo;
    const upstream = tx.decision.route.upstream;
    const linkHeader = postmarkLinkHeader(tx.id, upstream, tx.config.providerEvents.postmark);
    const outbound = { source, eightBit: message.eightBit, crlfOnly: message.crlfOnly, ...(linkHeader ? { headerPrefix: linkHeader } : {}) };
    const sent = rcptTo.length > 0 ? await deliver(deps.upstreams, upstream, { ...tx.envelope, rcptTo }, outbound, tx.config.upstreamHosts) : { upstream: upstream.name, outcomes: [] };
    const result = { upstream: sent.upstream, outcomes: [...sent.outcomes, ...suppressed] };
    await suppressGone(deps.suppression, tx.config, tenant, result, Date.now());
    const ms = performance.now() - sendStarted;
    deps.outcomes.emit('attempted', { message: facts, at: Date.now(), upstream: result.upstream, tried: true, attempt: 1, ms, outcomes: result.outcomes, final: true, expired: false });
    const reply = sent.outcomes.length > 0 ? passthroughReply(sent) : Replies.allSuppressed;
    return { kind: 'forwarded', reply, result, bytes, warnings: message.warnings };
  } finally {
    await deps.staging.discard(staged);
    await message.release();
  }
}
