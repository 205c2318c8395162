// At DATA, who owns the header From when the decision cannot tell yet: an address of a platform tenant
// that the lookups at MAIL FROM did not ask about. It is asked like a sender (cached, one request however
// many ask), so a message cannot wear another platform tenant's From because the relay had not looked.
// Unknown or unavailable: the decision stands, and the signature gate (sign only the tenant's own From)
// still keeps the relay from vouching for it.
import { domainOf, TenantDirectory } from '../../config/directory.js';
import { ownsAddress } from '../../config/ownership.js';
import { headerFromAddress } from '../message/addresses.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';
import type { RouteDecision } from '../types.js';

export async function withHeaderFromOwner(header: Buffer, decision: RouteDecision, platform: PlatformTenants | undefined): Promise<RouteDecision> {
  const rule = decision.headerFrom;
  if (!rule || !platform) return decision;
  const address = headerFromAddress(header);
  if (!address || ownsAddress(rule.tenant, address)) return decision;
  const { tenants } = rule;
  if (tenants.byAddress(address) || tenants.byDomain(domainOf(address))) return decision;
  const found = await platform.lookup({ by: 'sender', value: address });
  if (found.kind !== 'found') return decision;
  const other = new TenantDirectory([found.tenant]);
  return {
    ...decision,
    headerFrom: {
      ...rule,
      tenants: {
        byAuthUser: (u) => tenants.byAuthUser(u),
        byAddress: (a) => tenants.byAddress(a) ?? other.byAddress(a),
        byDomain: (d) => tenants.byDomain(d) ?? other.byDomain(d),
      },
    },
  };
}
