// Before a routing decision: ask the platform about the AUTH user and the sender when no YAML tenant
// claims them. YAML tenants take precedence key by key; the platform is never asked about a key the
// config files answer. A lookup that cannot be answered makes the whole decision wait (451 4.3.0).
import { domainOf, TenantDirectory } from '../../config/directory.js';
import type { TenantQuery } from '../../config/tenant-record.js';
import type { Config, Tenant } from '../../config/types.js';
import type { AuthIdentity, TenantFinder } from '../types.js';
import type { PlatformTenants } from './platform-tenants.js';

export type Resolution =
  | { readonly ok: true; readonly tenants: TenantFinder }
  | { readonly ok: false; readonly reason: string }
  /** The client has asked about too many unknown senders: the platform is not asked. */
  | { readonly ok: false; readonly reason: string; readonly overBudget: true };

/** Lookups that would reach the platform are taken from a budget (per session, per client address). */
export interface LookupBudget {
  take(): boolean;
}

export async function resolveTenants(mailFrom: string, auth: AuthIdentity | undefined, config: Config, platform: PlatformTenants | undefined, budget?: LookupBudget): Promise<Resolution> {
  const yaml = config.directory;
  if (!platform) return { ok: true, tenants: yaml };
  const order = new Set(config.identification.order);
  const queries: TenantQuery[] = [];
  if (auth && order.has('auth') && !yaml.byAuthUser(auth.username)) queries.push({ by: 'auth', value: auth.username });
  const senderUsed = order.has('address') || order.has('domain');
  if (mailFrom !== '' && senderUsed && !yaml.byAddress(mailFrom) && !yaml.byDomain(domainOf(mailFrom))) queries.push({ by: 'sender', value: mailFrom });
  if (queries.length === 0) return { ok: true, tenants: yaml };
  const asking = queries.filter((q) => !platform.isFresh(q)).length;
  for (let i = 0; i < asking; i++) {
    if (budget && !budget.take()) return { ok: false, reason: 'too many lookups of unknown senders from this session or address', overBudget: true };
  }

  const answers = await Promise.all(queries.map((q) => platform.lookup(q)));
  const found: Tenant[] = [];
  for (const [i, a] of answers.entries()) {
    if (a.kind === 'unavailable') return { ok: false, reason: `tenant source could not answer for ${queries[i]?.by} ${queries[i]?.value}: ${a.reason}` };
    if (a.kind === 'found' && !found.some((t) => t.id === a.tenant.id)) found.push(a.tenant);
  }
  if (found.length === 0) return { ok: true, tenants: yaml };
  const platformOnes = new TenantDirectory(found);
  return {
    ok: true,
    tenants: {
      byAuthUser: (u) => yaml.byAuthUser(u) ?? platformOnes.byAuthUser(u),
      byAddress: (a) => yaml.byAddress(a) ?? platformOnes.byAddress(a),
      byDomain: (d) => yaml.byDomain(d) ?? platformOnes.byDomain(d),
    },
  };
}
