// Suppression where mail is sent (queue attempts, pass-through): which recipients to skip, and which
// addresses to suppress after the upstream's answer.
import type { Config } from '../../config/types.js';
import { formatUpstreamReply, Replies } from '../errors.js';
import type { DeliveryResult, RecipientOutcome } from '../types.js';
import { mailboxGone } from './mailbox-gone.js';
import { type Suppression, suppressionOf, type SuppressionStore, suppressionTenant } from './store.js';

/**
 * The recipients whose address is suppressed for the tenant, as outcomes: skipped, no DSN (the relay
 * chose not to send), a `suppressed` event. The store away (Redis down): nothing is skipped; mail is not
 * held for it.
 */
export async function suppressedAmong(store: SuppressionStore | undefined, config: Config, tenant: string | null, rcptTo: readonly string[], now: number): Promise<RecipientOutcome[]> {
  if (!store || !suppressionOf(config, tenant).enabled) return [];
  const found = await store.check(suppressionTenant(tenant), rcptTo, now).catch(() => new Map<string, Suppression>());
  return rcptTo.flatMap((recipient) => {
    const s = found.get(recipient.toLowerCase());
    return s ? [{ recipient, status: 'perm' as const, reply: Replies.recipientSuppressed(`${s.source}: ${s.reason}`), suppressed: true }] : [];
  });
}

/** Recipients whose mailbox refused mail for good (mailbox-gone.ts) are suppressed for the tenant from now on. */
export async function suppressGone(store: SuppressionStore | undefined, config: Config, tenant: string | null, result: DeliveryResult, now: number): Promise<void> {
  const policy = suppressionOf(config, tenant);
  if (!store || !policy.enabled) return;
  for (const o of result.outcomes) {
    if (o.status !== 'perm' || o.suppressed || !o.upstreamReply || !mailboxGone(o.upstreamReply)) continue;
    const entry = { tenant: suppressionTenant(tenant), address: o.recipient.toLowerCase(), reason: formatUpstreamReply(o.upstreamReply), source: 'bounce' as const, at: now, expiresAt: now + policy.expiryMs };
    await store.add(entry).catch(() => undefined);
  }
}
