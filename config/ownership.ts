// What a tenant owns, for what may be signed for it and sent as it: the addresses and domains it is
// recognised by (an exact domain, or every subdomain of a `*.` pattern) and the From its identity sets.
// Pure, and the one definition the config checks, the routing decision and the message stage share.
import { asciiDomain, domainOf, normalizeAddress } from './directory.js';
import type { Tenant } from './types.js';

/** What a tenant claims and sends as: a built tenant, or a raw one being checked. */
type Claims = { readonly match: Pick<Tenant['match'], 'addresses' | 'domains'>; readonly identity: { readonly from?: string | undefined } };

/** The tenant owns this address: it claims it (see claimsAddress), or it is its identity's From. */
export function ownsAddress(tenant: Claims, address: string): boolean {
  if (tenant.identity.from !== undefined && normalizeAddress(tenant.identity.from) === normalizeAddress(address)) return true;
  return claimsAddress(tenant, address);
}

/** The tenant is recognised by this address: the address itself, its domain, or a parent's `*.` pattern. */
export function claimsAddress(tenant: Claims, address: string): boolean {
  const normal = normalizeAddress(address);
  return tenant.match.addresses.some((a) => normalizeAddress(a) === normal) || claimsDomain(tenant, domainOf(normal));
}

/**
 * A domain the tenant may sign as (its `signingDomain`): one it claims, a subdomain of a `*.` pattern, or
 * the domain of an address it claims (signed only for that address's mail: see ownsAddress).
 */
export function ownsDomain(tenant: Claims, domain: string): boolean {
  const d = asciiDomain(domain);
  if (claimsDomain(tenant, d)) return true;
  return [...tenant.match.addresses, ...(tenant.identity.from !== undefined ? [tenant.identity.from] : [])].some((a) => domainOf(a) === d);
}

function claimsDomain(tenant: Claims, domain: string): boolean {
  for (const pattern of tenant.match.domains) {
    if (pattern.startsWith('*.')) {
      if (domain.endsWith(`.${asciiDomain(pattern.slice(2))}`)) return true;
    } else if (asciiDomain(pattern) === domain) return true;
  }
  return false;
}

/** The tenant's claims in a few words, for explain and logs. */
export function ownedSummary(tenant: Tenant): string {
  const all = [...tenant.match.domains, ...tenant.match.addresses, ...(tenant.identity.from !== undefined && !claimsAddress(tenant, tenant.identity.from) ? [tenant.identity.from] : [])];
  return all.length > 0 ? all.slice(0, 6).join(', ') + (all.length > 6 ? `, and ${all.length - 6} more` : '') : '(nothing)';
}
