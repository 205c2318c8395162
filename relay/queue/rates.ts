// Per-tenant sending rates: a token bucket for the per-minute rate (bursts up to a minute's worth) and a
// counter per UTC day. Held in memory, so a restart starts the counts again.
import type { Tenant } from '../../config/types.js';

interface Usage {
  tokens: number;
  refilledAt: number;
  day: string;
  today: number;
}

export class TenantRates {
  readonly #usage = new Map<string, Usage>();

  /** When the tenant may send its next message (now or later); `now` when it has no limits. */
  nextAllowedAt(tenant: Tenant | undefined, now: number): number {
    const limits = tenant?.limits;
    if (!tenant || !limits) return now;
    const u = this.#refill(tenant, now);
    if (limits.messagesPerDay !== undefined && u.today >= limits.messagesPerDay) return startOfNextUtcDay(now);
    if (limits.messagesPerMinute !== undefined && u.tokens < 1) return now + Math.ceil(((1 - u.tokens) * 60_000) / limits.messagesPerMinute);
    return now;
  }

  /** Takes one message from the tenant's allowance; false (and nothing taken) when it has none left. */
  take(tenant: Tenant | undefined, now: number): boolean {
    if (this.nextAllowedAt(tenant, now) > now) return false;
    if (!tenant?.limits) return true;
    const u = this.#refill(tenant, now);
    u.tokens -= 1;
    u.today += 1;
    return true;
  }

  #refill(tenant: Tenant, now: number): Usage {
    const perMinute = tenant.limits?.messagesPerMinute ?? Number.POSITIVE_INFINITY;
    const day = new Date(now).toISOString().slice(0, 10);
    let u = this.#usage.get(tenant.id);
    if (!u) {
      u = { tokens: perMinute, refilledAt: now, day, today: 0 };
      this.#usage.set(tenant.id, u);
    }
    u.tokens = Math.min(perMinute, u.tokens + ((now - u.refilledAt) * perMinute) / 60_000);
    u.refilledAt = now;
    if (u.day !== day) {
      u.day = day;
      u.today = 0;
    }
    return u;
  }
}

function startOfNextUtcDay(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
}
