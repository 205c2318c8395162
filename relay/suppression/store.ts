// Suppression: an address a tenant's mail does not go to, for a while, after its mailbox refused mail for
// good (mailbox-gone.ts), after a provider's bounce or complaint, or by hand. Per tenant: one tenant's
// stale list never holds another's mail. Shared through Redis in a fleet (redis-store.ts), else in a
// store beside the spool (local-store.ts); both keep this contract.
import type { Config, SuppressionSettings, Tenant } from '../../config/types.js';

export const SUPPRESSION_SOURCES = ['bounce', 'complaint', 'provider', 'hand'] as const;
export type SuppressionSource = (typeof SUPPRESSION_SOURCES)[number];

export interface Suppression {
  /** The tenant's id; '' for mail of no tenant (the global route). */
  readonly tenant: string;
  /** Lower case: one mailbox, however it was written. */
  readonly address: string;
  /** Why: the upstream's reply, a provider's event, or what the person who added it wrote. */
  readonly reason: string;
  readonly source: SuppressionSource;
  readonly at: number;
  readonly expiresAt: number;
}

export interface SuppressionStore {
  /** Those of `addresses` (any case) suppressed for the tenant now, by lower-cased address. */
  check(tenant: string, addresses: readonly string[], now: number): Promise<Map<string, Suppression>>;
  add(entry: Suppression): Promise<void>;
  /** True when there was one. */
  remove(tenant: string, address: string): Promise<boolean>;
  /** A tenant's entries in address order, after `after`, starting with `prefix`; `tenant` undefined: every tenant's. */
  list(o: { tenant?: string; after?: string; prefix?: string; limit: number; now: number }): Promise<Suppression[]>;
  close(): void;
}

/** The store's key for a message's tenant. */
export const suppressionTenant = (tenant: string | null) => tenant ?? '';

/** A tenant's settings: its own keys over the global ones. */
export function suppressionOf(config: Config, tenantId: string | null): SuppressionSettings {
  const tenant: Tenant | undefined = tenantId === null ? undefined : config.directory.byId(tenantId);
  return { ...config.suppression, ...tenant?.suppression };
}

/** Bounds on what is kept of an entry: it is text from outside (an upstream, a provider, a person). */
export const MAX_REASON = 300;
export const MAX_ADDRESS = 320;
