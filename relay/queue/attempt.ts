// One delivery attempt of a queued message, start to finish: send to the upstream the scheduler chose,
// write each recipient's outcome to the spool before anything else, then finish the message (delivered,
// or failed with a DSN), retry it later, or expire it. When an attempt runs is the scheduler's business.
import type { Config } from '../../config/types.js';
import { type UpstreamAccess, deliver } from '../delivery/deliver.js';
import type { ProviderSignal } from '../delivery/provider-replies.js';
import { formatReply, formatUpstreamReply, Replies, type SmtpReply } from '../errors.js';
import type { Outcomes } from '../observe/outcomes.js';
import { newMessageId } from '../ids.js';
import type { DeliveryResult, MessageSource, RecipientOutcome, Upstream } from '../types.js';
import { retryDelay } from './backoff.js';
import { signDkim } from '../message/dkim.js';
import { dkimPlan } from '../routing/decide.js';
import { buildDsn } from './dsn.js';
import { factsOf, pendingRecipients, type QueuedMessage, type QueuedRecipient } from './entry.js';
import type { Spool } from './spool.js';
import { returnPathOf } from '../message/return-path.js';
import { postmarkLinkHeader } from '../message/postmark-link.js';
import { suppressedAmong, suppressGone } from '../suppression/apply.js';
import type { SuppressionStore } from '../suppression/store.js';
import { withSharedTexts } from './shared-texts.js';

export interface AttemptDeps {
  readonly spool: Spool;
  readonly upstreams: UpstreamAccess;
  readonly outcomes: Outcomes;
  /** Milliseconds since the epoch; tests pass a fake clock. */
  readonly clock: () => number;
  readonly random?: () => number;
  /** Addresses each tenant's mail does not go to (absent: none are). */
  readonly suppression?: SuppressionStore;
}

/** What became of the message: gone from the queue, or due again (and a DSN to queue, if one was made). */
export interface AttemptOutcome {
  /** Recipients the upstream took in this attempt. */
  readonly sent: number;
  readonly retry?: QueuedMessage;
  readonly dsn?: { readonly entry: QueuedMessage; readonly bytes: Buffer };
  /** The upstream's provider said to slow down, or that the mailbox's quota is used up: with its reply. */
  readonly signal?: { readonly kind: ProviderSignal; readonly reply: string };
}

/** What an attempt does: send to an upstream, or record that the relay holds the message (and why). */
export type AttemptTarget = { readonly kind: 'deliver'; readonly upstream: Upstream } | { readonly kind: 'hold'; readonly reply: SmtpReply };

/** The upstream name an attempt that sent nothing is recorded under. */
export const HELD = '(held)';

export async function attemptDelivery(
  entry: QueuedMessage,
  target: AttemptTarget,
  source: MessageSource | undefined,
  config: Config,
  now: number,
  deps: AttemptDeps,
): Promise<AttemptOutcome> {
  const { spool } = deps;
  const started = deps.clock();
  const rcptTo = pendingRecipients(entry);
  let result: DeliveryResult;
  if (target.kind === 'deliver') {
    // A DSN the relay made is never held back.
    const suppressed = entry.dsn ? [] : await suppressedAmong(deps.suppression, config, entry.tenant, rcptTo, now);
    const toSend = suppressed.length > 0 ? rcptTo.filter((r) => !suppressed.some((s) => s.recipient === r)) : rcptTo;
    const linkHeader = postmarkLinkHeader(entry.id, target.upstream, config.providerEvents.postmark);
    const message = { source: source ?? (await spool.source(entry.id)), eightBit: entry.eightBit === true, crlfOnly: entry.crlfOnly === true, ...(linkHeader ? { headerPrefix: linkHeader } : {}) };
    // Through the platform's smarthost (or a tenant's own upstream that opted in) with bounces by mail
    // on: the message's own return path (VERP).
    const verp = (u: Upstream) => u.kind === 'smtp' && (u.owner === 'platform' || (entry.tenant !== null && config.directory.byId(entry.tenant)?.delivery.verp === true));
    const mailFrom = config.bounces && entry.mailFrom !== '' && !entry.dsn && verp(target.upstream) ? returnPathOf(entry.id, config.bounces) : entry.mailFrom;
    const sent = toSend.length > 0 ? await deliver(deps.upstreams, target.upstream, { mailFrom, rcptTo: toSend }, message, config.upstreamHosts) : { upstream: target.upstream.name, outcomes: [] };
    result = { upstream: sent.upstream, outcomes: [...sent.outcomes, ...suppressed] };
    if (!entry.dsn) await suppressGone(deps.suppression, config, entry.tenant, result, now);
  } else {
    result = { upstream: HELD, outcomes: rcptTo.map((recipient) => ({ recipient, status: 'temp', reply: target.reply })) };
  }
  const outcomes = new Map(result.outcomes.map((o) => [o.recipient, o]));
  const recipients = entry.recipients.map((r) => (r.status === 'pending' ? applyOutcome(r, outcomes.get(r.address)) : r));
  const ms = deps.clock() - started;
  const attempt = entry.attempts + 1;
  const message = factsOf(entry);

  const sent = result.outcomes.filter((o) => o.status === 'sent').length;
  const signal = target.kind === 'deliver' ? providerSignalIn(result) : undefined;
  const stillPending = recipients.filter((r) => r.status === 'pending');
  const expired = stillPending.length > 0 && now - entry.createdAt >= config.delivery.retry.maxLifetimeMs;
  const nextAttemptAt = stillPending.length > 0 && !expired ? now + retryDelay(attempt, config.delivery.retry, deps.random) : undefined;
  deps.outcomes.emit('attempted', {
    message,
    at: deps.clock(),
    upstream: result.upstream,
    tried: target.kind === 'deliver',
    attempt,
    ms,
    outcomes: result.outcomes,
    final: nextAttemptAt === undefined,
    expired,
    ...(nextAttemptAt !== undefined ? { nextAttemptAt } : {}),
  });
  const told = { sent, ...(signal ? { signal } : {}) };
  if (stillPending.length === 0) return { ...told, ...(await finish({ ...entry, recipients, attempts: attempt }, config, now, deps)) };
  if (nextAttemptAt === undefined) {
    const failed = recipients.map((r) => (r.status === 'pending' ? { ...r, status: 'failed' as const, reply: formatReply(Replies.deliveryExpired(r.reply ?? 'none')) } : r));
    return { ...told, ...(await finish({ ...entry, recipients: failed, attempts: attempt }, config, now, deps)) };
  }
  // Held until it is due, beside every other message deferred by the same outage: its texts shared.
  const next: QueuedMessage = withSharedTexts({
    ...entry,
    recipients,
    attempts: attempt,
    nextAttemptAt,
    firstTempFailureAt: entry.firstTempFailureAt ?? now,
    lastError: stillPending[0]?.reply ?? 'unknown',
  });
  await spool.update(next);
  deps.outcomes.emit('settled', { message, attempt, state: 'deferred', upstream: result.upstream, ms, pending: stillPending.length, nextAttemptAt });
  return { ...told, retry: next };
}

/** A pace or quota reply among the recipients' outcomes (classify.ts gave it its reply id). */
function providerSignalIn(result: DeliveryResult): AttemptOutcome['signal'] {
  for (const o of result.outcomes) {
    const kind: ProviderSignal | undefined = o.reply.id === 'upstream-quota-exceeded' ? 'quota' : o.reply.id === 'upstream-throttled' ? 'throttle' : undefined;
    if (kind) return { kind, reply: o.upstreamReply ? formatUpstreamReply(o.upstreamReply) : formatReply(o.reply) };
  }
  return undefined;
}

/** Every recipient has a final status: record it, bounce what failed, and take the message out of the queue. */
async function finish(entry: QueuedMessage, config: Config, now: number, deps: AttemptDeps): Promise<Omit<AttemptOutcome, 'sent'>> {
  const { spool } = deps;
  const failed = entry.recipients.filter((r) => r.status === 'failed');
  if (failed.length === 0) {
    // Delivered to all: removing it is the record.
    await spool.remove(entry.id);
    deps.outcomes.emit('settled', { message: factsOf(entry), attempt: entry.attempts, state: 'delivered', recipients: entry.recipients.length });
    return {};
  }
  // With failures, the outcome is written before the DSN, and the DSN is queued before the message moves.
  // Its last word is how it failed, not an earlier deferral.
  entry = { ...entry, lastError: failed[0]?.upstreamReply ?? failed[0]?.reply ?? entry.lastError };
  await spool.update(entry);
  const bounce = entry.mailFrom !== '' && !entry.dsn;
  const dsn = bounce ? await queueDsn(entry, failed, config, now, spool) : undefined;
  await spool.fail(entry);
  deps.outcomes.emit('settled', {
    message: factsOf(entry),
    attempt: entry.attempts,
    state: 'failed',
    failed: failed.map((r) => ({ address: r.address, ...(r.reply ? { reply: r.reply } : {}) })),
    bounced: bounce,
    ...(dsn?.unsigned !== undefined ? { dsnUnsigned: dsn.unsigned } : {}),
  });
  return dsn ? { dsn: { entry: dsn.entry, bytes: dsn.bytes } } : {};
}

/**
 * The DSN is a message of its own, as durable as any other and retried the same way. It is the platform's
 * own mail: signed as the platform (dkim.signingDomain) when it has a key, so receivers that weigh DKIM
 * do not file it as a forgery. A key that fails to sign leaves it unsigned rather than lost.
 */
async function queueDsn(entry: QueuedMessage, failed: readonly QueuedRecipient[], config: Config, now: number, spool: Spool) {
  const originalHeader = await spool.headerBlock(entry.id);
  const unsigned = buildDsn({ original: entry, failed, originalHeader, reportingHost: config.hostname, now: new Date(now) });
  const plan = dkimPlan(undefined, config);
  let bytes = unsigned;
  let notSigned: string | undefined;
  if (plan.kind === 'sign' && plan.signingDomain !== undefined) {
    try {
      bytes = Buffer.concat([Buffer.from((await signDkim(unsigned, plan.signingDomain, plan.selector, plan.key)).header, 'latin1'), unsigned]);
    } catch (err) {
      notSigned = (err as Error).message;
    }
  }
  const dsn = await spool.commit(
    { v: 1, id: newMessageId(), createdAt: now, mailFrom: '', tenant: null, recipients: [{ address: entry.mailFrom, status: 'pending' }], attempts: 0, nextAttemptAt: now, dsn: true },
    bytes,
  );
  return { entry: dsn, bytes, ...(notSigned !== undefined ? { unsigned: notSigned } : {}) };
}

function applyOutcome(r: QueuedRecipient, outcome: RecipientOutcome | undefined): QueuedRecipient {
  if (!outcome) return r;
  const status = outcome.suppressed ? 'suppressed' : outcome.status === 'sent' ? 'sent' : outcome.status === 'perm' ? 'failed' : 'pending';
  return { address: r.address, status, reply: formatReply(outcome.reply), ...(outcome.upstreamReply ? { upstreamReply: formatUpstreamReply(outcome.upstreamReply) } : {}) };
}
