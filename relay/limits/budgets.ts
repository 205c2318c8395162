// Which sending budgets a message draws on: its tenant's (`limits` on the tenant), and its upstream
// mailbox's (`limits` on the upstream: what the provider allows that mailbox, shared by every tenant that
// sends through it, e.g. Microsoft 365's 30 messages a minute and 10,000 recipients a day).
import type { Limits, Tenant, Upstream } from '../../config/types.js';

export interface Budget {
  /** Names the budget in the limit store: tenant:<id> or mailbox:<host>/<user>. */
  readonly key: string;
  readonly limits: Limits;
}

export function budgetsFor(tenant: Tenant | undefined, upstream: Upstream): Budget[] {
  const budgets: Budget[] = [];
  if (tenant?.limits) budgets.push({ key: `tenant:${tenant.id}`, limits: tenant.limits });
  if (upstream.kind === 'smtp' && upstream.limits) budgets.push({ key: `mailbox:${upstream.host}/${upstream.auth?.user ?? ''}`, limits: upstream.limits });
  return budgets;
}
