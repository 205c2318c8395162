// The tenant of a queued message at the moment of an attempt: as the config files say now, else as the
// platform last answered. Never guessed: while the platform has no usable answer, the message waits; and
// a tenant whose record is gone (removed from the files, or the platform says 404: suspended, or a bug)
// does not have its mail leave under the platform's identity through the smarthost. It is held, and
// bounced at the end of its lifetime unless the tenant comes back.
import type { Config } from '../../config/types.js';
import type { Tenant } from '../types.js';
import type { PlatformTenants } from './platform-tenants.js';

export type QueuedTenant =
  /** Mail of no tenant: the global route. */
  | { readonly kind: 'none' }
  | { readonly kind: 'tenant'; readonly tenant: Tenant }
  /** Its record is being looked up: ask again shortly. */
  | { readonly kind: 'wait' }
  /** It had a tenant, and that tenant is known no more. */
  | { readonly kind: 'gone'; readonly id: string };

/** `answeredWithinMs`: how old an answer of the platform the queue may still go by (PlatformTenants.peekById). */
export function tenantOfQueued(id: string | null, config: Config, platform: PlatformTenants | undefined, answeredWithinMs = 0): QueuedTenant {
  if (id === null) return { kind: 'none' };
  const own = config.directory.byId(id);
  if (own) return { kind: 'tenant', tenant: own };
  if (!platform) return { kind: 'gone', id };
  const known = platform.peekById(id, answeredWithinMs);
  if (known === undefined) return { kind: 'wait' };
  return known ? { kind: 'tenant', tenant: known } : { kind: 'gone', id };
}
