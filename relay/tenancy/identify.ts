// Which tenant sent this mail: pure, so `serve` and `explain` can never disagree.
import { domainOf } from '../../config/directory.js';
import type { Config } from '../../config/types.js';
import type { AuthIdentity, TenantFinder, TenantMatch } from '../types.js';

export type Identification =
  /** `bySender` is what the sender alone says (absent when no tenant claims it). */
  | { readonly kind: 'tenant'; readonly match: TenantMatch; readonly bySender?: TenantMatch }
  | { readonly kind: 'none' }
  /** AUTH names one tenant and the sender another: the conflict rule decides what happens. */
  | { readonly kind: 'conflict'; readonly auth: TenantMatch; readonly sender: TenantMatch };

export function identifyTenant(mailFrom: string, auth: AuthIdentity | undefined, config: Config, directory: TenantFinder = config.directory): Identification {
  const find = {
    auth: (): TenantMatch | undefined => {
      const tenant = auth && directory.byAuthUser(auth.username);
      return tenant && auth && { tenant, by: 'auth', key: auth.username };
    },
    address: (): TenantMatch | undefined => {
      const tenant = mailFrom ? directory.byAddress(mailFrom) : undefined;
      return tenant && { tenant, by: 'address', key: mailFrom.toLowerCase() };
    },
    domain: (): TenantMatch | undefined => {
      const found = mailFrom ? directory.byDomain(domainOf(mailFrom)) : undefined;
      return found && { tenant: found.tenant, by: 'domain', key: found.pattern };
    },
  };

  const matches = config.identification.order.map((by) => find[by]()).filter((m) => m !== undefined);
  const byAuth = matches.find((m) => m.by === 'auth');
  const bySender = matches.find((m) => m.by !== 'auth');
  if (byAuth && bySender && byAuth.tenant !== bySender.tenant) {
    if (config.identification.conflict === 'prefer-auth') return { kind: 'tenant', match: byAuth, bySender };
    return { kind: 'conflict', auth: byAuth, sender: bySender };
  }
  const first = matches[0];
  if (!first) return { kind: 'none' };
  return bySender ? { kind: 'tenant', match: first, bySender } : { kind: 'tenant', match: first };
}
