// Where a tenant's mail goes, and how. decide() takes it for a new message; the queue takes it again
// for each attempt of a queued one, from the snapshot in force at that attempt, so a tenant that fixes
// its upstream helps mail already queued and the dry-run (explain) shows the same rule.
import type { Config } from '../../config/types.js';
import type { DeliveryMode, Route, Tenant, Upstream } from '../types.js';

/** The tenant's own upstream, else the smarthost; with the tenant's smarthost fallback when it has one. */
export function routeOf(tenant: Tenant | undefined, config: Config): Route {
  if (!tenant?.upstream) return { upstream: config.smarthost, via: 'smarthost' };
  const afterMs = tenant.delivery.fallbackToSmarthostAfterMs;
  return { upstream: tenant.upstream, via: 'tenant', ...(afterMs !== undefined ? { fallback: { upstream: config.smarthost, afterMs } } : {}) };
}

export function modeOf(tenant: Tenant | undefined, config: Config): DeliveryMode {
  return tenant?.delivery.mode ?? config.delivery.mode;
}

/**
 * The upstream one attempt of a queued message uses: the route's, or its fallback once temporary
 * failures have lasted long enough (a 5xx never starts that clock: it ends the message).
 */
export function upstreamForAttempt(route: Route, firstTempFailureAt: number | undefined, now: number): Upstream {
  const { fallback } = route;
  if (fallback && firstTempFailureAt !== undefined && now - firstTempFailureAt >= fallback.afterMs) return fallback.upstream;
  return route.upstream;
}
