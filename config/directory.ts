// Indexes built once per snapshot so that finding a tenant costs a map lookup per domain label,
// however many tenants there are.
import { domainToASCII } from 'node:url';
import type { DomainMatch, Tenant, TenantIndex } from './types.js';

export class TenantDirectory implements TenantIndex {
  readonly #byId = new Map<string, Tenant>();
  readonly #byAuthUser = new Map<string, Tenant>();
  readonly #byAddress = new Map<string, Tenant>();
  readonly #byDomain = new Map<string, Tenant>();
  readonly #bySubdomainsOf = new Map<string, Tenant>();

  /** Callers must have checked that no key is claimed twice (validate.ts does). */
  constructor(tenants: readonly Tenant[]) {
    for (const tenant of tenants) {
      this.#byId.set(tenant.id, tenant);
      for (const user of tenant.match.authUsers) this.#byAuthUser.set(user, tenant);
      for (const address of tenant.match.addresses) this.#byAddress.set(normalizeAddress(address), tenant);
      for (const pattern of tenant.match.domains) {
        if (pattern.startsWith('*.')) this.#bySubdomainsOf.set(asciiDomain(pattern.slice(2)), tenant);
        else this.#byDomain.set(asciiDomain(pattern), tenant);
      }
    }
    Object.freeze(this);
  }

  byId(id: string): Tenant | undefined {
    return this.#byId.get(id);
  }

  byAuthUser(username: string): Tenant | undefined {
    return this.#byAuthUser.get(username);
  }

  byAddress(address: string): Tenant | undefined {
    return this.#byAddress.get(normalizeAddress(address));
  }

  /** The exact domain first, then the nearest parent domain whose subdomains are claimed. */
  byDomain(domain: string): DomainMatch | undefined {
    const d = asciiDomain(domain);
    const exact = this.#byDomain.get(d);
    if (exact) return { tenant: exact, pattern: d };
    for (let dot = d.indexOf('.'); dot !== -1; dot = d.indexOf('.', dot + 1)) {
      const parent = d.slice(dot + 1);
      const tenant = this.#bySubdomainsOf.get(parent);
      if (tenant) return { tenant, pattern: `*.${parent}` };
    }
    return undefined;
  }
}

/**
 * Domains are case-insensitive; local parts are compared case-insensitively too, as every real
 * mailbox provider does, so "Alerts@Acme.example" finds the tenant that listed "alerts@acme.example".
 */
export function normalizeAddress(address: string): string {
  const at = address.lastIndexOf('@');
  return `${address.slice(0, at).toLowerCase()}@${asciiDomain(address.slice(at + 1))}`;
}

export function domainOf(address: string): string {
  return asciiDomain(address.slice(address.lastIndexOf('@') + 1));
}

/** The domain in the ASCII (punycode) form DNS and SMTP without SMTPUTF8 use, lower case. */
export function asciiDomain(domain: string): string {
  const lower = domain.toLowerCase();
  // Already ASCII: nothing for IDNA to map (what domainToASCII would return, without the native call
  // that a 10,000-tenant config would make 100,000 times).
  if (ASCII_DOMAIN.test(lower)) return lower;
  return domainToASCII(domain) || lower;
}

const ASCII_DOMAIN = /^[a-z0-9.-]*$/;
