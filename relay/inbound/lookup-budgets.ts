// How many unknown senders a client may have the relay ask the platform about: so many per session, and
// so many a minute per client address (a token bucket). A client walking through random senders (MAIL
// FROM, RSET, MAIL FROM, ...) costs the platform's tenant API a bounded number of requests, then 451 4.7.1.
import type { TenantSourceSettings } from '../../config/types.js';
import type { LookupBudget } from '../tenancy/resolve.js';

export class LookupBudgets {
  readonly #perSession = new Map<string, number>();
  readonly #perClient = new Map<string, { tokens: number; at: number }>();

  /** The budget of one MAIL FROM's lookups, for this session and its client's address. */
  of(session: string, client: string, settings: TenantSourceSettings, now = performance.now()): LookupBudget {
    return {
      take: () => {
        const used = this.#perSession.get(session) ?? 0;
        if (used >= settings.maxLookupsPerSession) return false;
        const perMinute = settings.maxLookupsPerClientPerMinute;
        const bucket = this.#perClient.get(client) ?? { tokens: perMinute, at: now };
        bucket.tokens = Math.min(perMinute, bucket.tokens + ((now - bucket.at) * perMinute) / 60_000);
        bucket.at = now;
        if (bucket.tokens < 1) return false;
        bucket.tokens -= 1;
        this.#perClient.set(client, bucket);
        this.#perSession.set(session, used + 1);
        if (this.#perClient.size > 10_000) this.#prune(now, perMinute);
        return true;
      },
    };
  }

  /** The session ended: its count goes. */
  ended(session: string): void {
    this.#perSession.delete(session);
  }

  /** Buckets full again are the same as none. */
  #prune(now: number, perMinute: number): void {
    for (const [client, b] of this.#perClient) if (b.tokens + ((now - b.at) * perMinute) / 60_000 >= perMinute) this.#perClient.delete(client);
  }
}
