// At DATA, who owns the header From (and Sender, Resent-) when the decision cannot tell yet: an address of
// a platform tenant that the lookups at MAIL FROM did not ask about. It is asked like a sender (cached, one
// request however many ask), so a message cannot wear another platform tenant's From because the relay
// had not looked.
// Unknown or unavailable: the decision stands, and the signature gate (sign only the tenant's own From)
// still keeps the relay from vouching for it.
import { domainOf, TenantDirectory } from '../../config/directory.js';
import { ownsAddress } from '../../config/ownership.js';
import { agentAddresses, fromAddresses } from '../message/addresses.js';
import { HeaderBlock } from '../message/header-block.js';
import { MAX_FROM_ADDRESSES } from '../message/transform.js';
import type { Tenant } from '../../config/types.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';
import type { RouteDecision } from '../types.js';

export async function withHeaderFromOwner(header: Buffer, decision: RouteDecision, platform: PlatformTenants | undefined): Promise<RouteDecision> {
  const rule = decision.headerFrom;
  if (!rule || !platform) return decision;
  const { tenants } = rule;
  // Every address the From, Sender and Resent- headers name is checked (transform.ts), so each unknown one
  // is asked about, one at a time: the first that is another tenant's is enough for the refusal. More than
  // the message stage takes is refused there: the questions stop at that many of each.
  let found: Tenant | undefined;
  const block = HeaderBlock.parse(header);
  const agents = agentAddresses(block, MAX_FROM_ADDRESSES).slice(0, MAX_FROM_ADDRESSES);
  const addresses = [...fromAddresses(block).slice(0, MAX_FROM_ADDRESSES), ...agents.map((a) => a.address)];
  for (const address of addresses) {
    if (ownsAddress(rule.tenant, address) || tenants.byAddress(address) || tenants.byDomain(domainOf(address))) continue;
    const answer = await platform.lookup({ by: 'sender', value: address });
    if (answer.kind === 'found' && answer.tenant.id !== rule.tenant.id) {
      found = answer.tenant;
      break;
    }
  }
  if (!found) return decision;
  const other = new TenantDirectory([found]);
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
