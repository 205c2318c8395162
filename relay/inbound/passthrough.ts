// Pass-through, after the intake: the message is forwarded while the client waits, and the upstream's
// answer, per recipient, decides what the client hears (passthrough-reply.ts). Nothing is queued; the
// client keeps the responsibility to retry.
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { type UpstreamAccess, deliver } from '../delivery/deliver.js';
import type { SmtpReply } from '../errors.js';
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
      bytes = message.bytes.length;
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
    const result = await deliver(deps.upstreams, tx.decision.route.upstream, tx.envelope, { source, eightBit: message.eightBit }, tx.config.upstreamHosts);
    const ms = performance.now() - sendStarted;
    deps.outcomes.emit('attempted', { message: facts, at: Date.now(), upstream: result.upstream, tried: true, attempt: 1, ms, outcomes: result.outcomes, final: true, expired: false });
    return { kind: 'forwarded', reply: passthroughReply(result), result, bytes, warnings: message.warnings };
  } finally {
    await deps.staging.discard(staged);
    await message.release();
  }
}
