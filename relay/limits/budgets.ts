// Which sending budgets a message draws on: its tenant's (`limits` on the tenant), and its upstream
// mailbox's (`limits` on the upstream: what the provider allows that mailbox, shared by every tenant that
// sends through it, e.g. Microsoft 365's 30 messages a minute and 10,000 recipients a day).
import type { Limits, SmtpUpstream, Tenant, Upstream } from '../../config/types.js';

export interface Budget {
  /** Names the budget in the limit store: tenant:<id> or mailbox:<host>/<user>. */
  readonly key: string;
  readonly limits: Limits;
}

export function budgetsFor(tenant: Tenant | undefined, upstream: Upstream, now = Date.now()): Budget[] {
  const budgets: Budget[] = [];
  if (tenant?.limits) budgets.push({ key: `tenant:${tenant.id}`, limits: tenant.limits });
  const mailbox = upstream.kind === 'smtp' ? mailboxLimits(upstream, now) : undefined;
  if (upstream.kind === 'smtp' && mailbox) budgets.push({ key: mailboxKey(upstream), limits: mailbox });
  return budgets;
}

/** The mailbox's limits now: its own, with a warming-up account's day limit as far as its ramp has come. */
function mailboxLimits(u: SmtpUpstream, now: number): Limits | undefined {
  if (!u.ramp) return u.limits;
  const doublings = Math.max(0, Math.floor((now - u.ramp.sinceMs) / u.ramp.doubleEveryMs));
  // Past 2^40 times anything, the ramp is over.
  const ramped = doublings > 40 ? Number.POSITIVE_INFINITY : u.ramp.messagesPerDay * 2 ** doublings;
  const own = u.limits?.messagesPerDay ?? Number.POSITIVE_INFINITY;
  if (ramped >= own || ramped === Number.POSITIVE_INFINITY) return u.limits;
  return { ...u.limits, messagesPerDay: ramped };
}

/**
 * A mailbox budget is shared by those who hold its credential (the same host, user and secret, told
 * apart by the credential's id), so a tenant that only names another's host and user counts on a budget
 * of its own and cannot spend or push the other's. Without credentials, the budget is the owner's alone.
 */
export function mailboxKey(u: SmtpUpstream): string {
  return u.auth ? `mailbox:${u.host}/${u.auth.user}/${u.auth.id}` : `mailbox:${u.host}/-/${u.name}`;
}
