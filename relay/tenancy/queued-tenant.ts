// The tenant of a queued message at the moment of an attempt: as the config files say now, else as the
// platform last answered. Never guessed: while the platform has no usable answer, the message waits
// rather than leave through another upstream.
import type { Config } from '../../config/types.js';
import type { Tenant } from '../types.js';
import type { PlatformTenants } from './platform-tenants.js';

/** undefined: the global route (no tenant, or one that no longer exists); 'wait': ask again shortly (a lookup runs). */
export function tenantOfQueued(id: string | null, config: Config, platform: PlatformTenants | undefined): Tenant | undefined | 'wait' {
  if (id === null) return undefined;
  const own = config.directory.byId(id);
  if (own || !platform) return own;
  const known = platform.peekById(id);
  return known === undefined ? 'wait' : (known ?? undefined);
}
