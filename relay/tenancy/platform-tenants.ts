// Tenants the platform keeps, looked up over HTTP and cached in an LRU: fresh for cacheSeconds, then served
// stale for up to staleSeconds while one background request refreshes them (or while the platform is
// down), "no such tenant" remembered for notFoundCacheSeconds. One request in flight per key, however
// many sessions ask at once. Past the stale window a failed lookup is "unavailable", never a guess.
import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import { domainOf } from '../../config/directory.js';
import { parseTenantRecord, type TenantQuery } from '../../config/tenant-record.js';
import type { Config, Tenant, TenantSourceSettings } from '../../config/types.js';
import type { Logger } from '../log.js';
import type { RelayMetrics } from '../ops/metrics.js';
import { fetchRecord } from './fetch-record.js';

export type Lookup =
  | { readonly kind: 'found'; readonly tenant: Tenant }
  | { readonly kind: 'none' }
  | { readonly kind: 'unavailable'; readonly reason: string };

interface Answer {
  readonly tenant: Tenant | null;
  readonly fetchedAt: number;
  /** How long this answer is fresh: negative answers have their own. */
  readonly ttl: number;
  /** A 404 that said no tenant has any address at the sender's domain. */
  readonly domainUnclaimed?: boolean;
}

export interface PlatformTenantsDeps {
  readonly logger: Logger;
  readonly metrics?: RelayMetrics;
  /** The snapshot records are checked against (YAML tenant ids, the platform DKIM key). */
  readonly config: () => Config;
  /** Milliseconds; tests pass a fake clock. */
  readonly now?: () => number;
}

export class PlatformTenants {
  readonly settings: TenantSourceSettings;
  readonly #cache: LRUCache<string, Answer, TenantQuery>;
  /**
   * "No such tenant", kept apart: random senders (a client trying address after address) fill this one,
   * and never push the records of real tenants out of the other. By key, and by domain where the
   * platform said no tenant has any address there.
   */
  readonly #notFound: LRUCache<string, true>;
  /** The platform's last word on each tenant id (its record, or null for a 404) and when it came (peekById). */
  readonly #lastById: LRUCache<string, { readonly tenant: Tenant | null; readonly at: number }>;
  /** When queued mail last had nothing to go by for each tenant id, and asked (peekById). */
  readonly #askedById: LRUCache<string, number>;
  readonly #deps: PlatformTenantsDeps;
  readonly #now: () => number;

  constructor(settings: TenantSourceSettings, deps: PlatformTenantsDeps) {
    this.settings = settings;
    this.#deps = deps;
    this.#now = deps.now ?? (() => performance.timeOrigin + performance.now());
    this.#cache = new LRUCache<string, Answer, TenantQuery>({
      max: settings.maxEntries,
      ttl: settings.cacheMs,
      ttlResolution: 0,
      perf: { now: this.#now },
      // Stale-while-revalidate: a stale answer is returned at once and one background fetch replaces it.
      allowStale: true,
      noDeleteOnStaleGet: true,
      allowStaleOnFetchRejection: true,
      allowStaleOnFetchAbort: true,
      fetchMethod: (_key, _stale, { signal, options, context }) => this.#fetch(context, signal, options),
    });
    this.#notFound = new LRUCache<string, true>({ max: Math.max(100, settings.maxEntries), ttl: Math.max(1, settings.notFoundMs), ttlResolution: 0, perf: { now: this.#now } });
    this.#lastById = new LRUCache({ max: settings.maxEntries });
    this.#askedById = new LRUCache({ max: settings.maxEntries });
  }

  /** The answer is at hand, fresh: a lookup makes no request. */
  isFresh(query: TenantQuery): boolean {
    const key = keyOf(query);
    if (this.#knownAbsent(query)) return true;
    const held = this.#cache.get(key, { allowStale: true, noDeleteOnStaleGet: true });
    return held !== undefined && this.#now() - held.fetchedAt <= held.ttl;
  }

  #knownAbsent(query: TenantQuery): boolean {
    if (this.settings.notFoundMs <= 0) return false;
    return this.#notFound.has(keyOf(query)) || (query.by === 'sender' && this.#notFound.has(`domain:${domainOf(query.value)}`));
  }

  /** The tenant the platform says owns this AUTH user, sender address or id. */
  async lookup(query: TenantQuery): Promise<Lookup> {
    if (this.#knownAbsent(query)) {
      this.#count('hit');
      return { kind: 'none' };
    }
    const key = keyOf(query);
    const held = this.#cache.get(key, { allowStale: true, noDeleteOnStaleGet: true });
    const usable = held !== undefined && this.#usable(held);
    const status: LRUCache.Status<string, Answer, TenantQuery> = {};
    let answer: Answer | undefined;
    try {
      answer = await this.#cache.fetch(key, {
        context: query,
        status,
        allowStale: usable,
        allowStaleOnFetchRejection: usable,
        allowStaleOnFetchAbort: usable,
      });
    } catch (err) {
      this.#count('unavailable');
      return { kind: 'unavailable', reason: (err as Error).message };
    }
    // A caller that joined a refresh started by another may get that one's stale fallback: check it again.
    if (!answer || !this.#usable(answer)) {
      this.#count('unavailable');
      return { kind: 'unavailable', reason: status.fetchError instanceof Error ? status.fetchError.message : 'no fresh answer, and the cached one is past staleSeconds' };
    }
    this.#count(status.returnedStale ? 'stale' : status.fetch === 'hit' ? 'hit' : status.fetch === 'inflight' ? 'joined' : 'miss');
    if (!answer.tenant) {
      // Moved to the cache of negatives (see #notFound).
      if (this.#cache.get(key, { allowStale: true }) === answer) this.#cache.delete(key);
      if (this.settings.notFoundMs > 0) {
        this.#notFound.set(key, true);
        if (answer.domainUnclaimed && query.by === 'sender') this.#notFound.set(`domain:${domainOf(query.value)}`, true);
      }
      return { kind: 'none' };
    }
    return { kind: 'found', tenant: answer.tenant };
  }

  /**
   * What the cache knows of a tenant id right now, without waiting: the queue asks this for every due
   * message. Unknown (undefined) starts a lookup; the caller tries again shortly. When the cache has let
   * the answer go, the answer to the previous such look's request still counts if it came within
   * `answeredWithinMs`: the queue looks again only after a wait, and an answer kept for less than that
   * (cacheSeconds under a second, staleSeconds 0) was past its time at every look, each look asking
   * again and none using the answer, so the mail was never sent, held nor bounced. Only an answer that
   * came after the look that had nothing to go by counts: one from before is what the settings said not
   * to go by.
   */
  peekById(id: string, answeredWithinMs = 0): Tenant | null | undefined {
    const key = keyOf({ by: 'id', value: id });
    if (this.#knownAbsent({ by: 'id', value: id })) return null;
    const held = this.#cache.get(key, { allowStale: true, noDeleteOnStaleGet: true });
    if (held && this.#now() - held.fetchedAt <= held.ttl) return held.tenant;
    // Stale or unknown: one lookup (joined if one is already running) refreshes it for the next round.
    void this.lookup({ by: 'id', value: id });
    if (held && this.#usable(held)) return held.tenant;
    const asked = this.#askedById.get(id);
    const last = this.#lastById.get(id);
    if (last && asked !== undefined && last.at >= asked && this.#now() - last.at <= answeredWithinMs) return last.tenant;
    // Nothing to go by: this look asks, and only an answer that comes after it will count.
    this.#askedById.set(id, this.#now());
    return undefined;
  }

  /**
   * The platform changed a tenant (published on the invalidation channel): forget every answer about it,
   * and the "no such tenant" answers too, which a new claim of that tenant may contradict. `*`: all.
   */
  invalidate(id: string): number {
    if (id === '*') {
      const n = this.#cache.size + this.#notFound.size;
      this.#cache.clear();
      this.#notFound.clear();
      this.#lastById.clear();
      return n;
    }
    // A tenant that appeared may claim what was "no such tenant" a moment ago.
    this.#notFound.clear();
    for (const [key, last] of this.#lastById.entries()) if (last.tenant === null || key === id) this.#lastById.delete(key);
    let dropped = 0;
    for (const [key, answer] of this.#cache.entries()) {
      if (answer.tenant === null || answer.tenant.id === id) {
        this.#cache.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  /**
   * Past its stale window an answer must be confirmed: wait for the request, and fail if it fails. "No such
   * tenant" is never served stale: a tenant just created on the platform must not be routed as nobody's.
   */
  #usable(answer: Answer): boolean {
    return this.#now() - answer.fetchedAt <= answer.ttl + (answer.tenant ? this.settings.staleMs : 0);
  }

  async #fetch(query: TenantQuery, signal: AbortSignal, options: LRUCache.FetcherFetchOptions<string, Answer, TenantQuery>): Promise<Answer> {
    const { logger, metrics } = this.#deps;
    const started = performance.now();
    const fetched = await fetchRecord(this.settings, query, signal);
    metrics?.tenantSourceSeconds.observe((performance.now() - started) / 1000);
    const where = { event: 'tenant-lookup', by: query.by, value: query.value };
    if (fetched.kind === 'failed') {
      metrics?.tenantSourceRequests.inc({ result: fetched.timeout ? 'timeout' : 'failed' });
      logger.warn({ ...where, reason: fetched.reason }, 'tenant source did not answer');
      throw new Error(fetched.reason);
    }
    if (fetched.kind === 'not-found') {
      metrics?.tenantSourceRequests.inc({ result: 'not-found' });
      options.ttl = Math.max(1, this.settings.notFoundMs);
      if (query.by === 'id') this.#lastById.set(query.value, { tenant: null, at: this.#now() });
      return { tenant: null, fetchedAt: this.#now(), ttl: this.settings.notFoundMs, ...(fetched.domainUnclaimed ? { domainUnclaimed: true } : {}) };
    }
    const checked = parseTenantRecord(fetched.json, query, this.#deps.config(), this.settings.upstreamHosts);
    if (!checked.ok) {
      metrics?.tenantSourceRequests.inc({ result: 'malformed' });
      logger.error({ ...where, problems: checked.problems }, 'tenant source answered a record that is not valid; refused');
      throw new Error(`invalid tenant record: ${checked.problems.join('; ')}`);
    }
    metrics?.tenantSourceRequests.inc({ result: 'found' });
    const answer = { tenant: checked.tenant, fetchedAt: this.#now(), ttl: this.settings.cacheMs };
    this.#lastById.set(checked.tenant.id, { tenant: checked.tenant, at: answer.fetchedAt });
    // Queued mail finds its tenant again by id: a lookup by sender or AUTH user answers that one too.
    if (query.by !== 'id') this.#cache.set(keyOf({ by: 'id', value: checked.tenant.id }), answer);
    return answer;
  }

  #count(result: string): void {
    this.#deps.metrics?.tenantLookups.inc({ result });
  }
}

/** Addresses compare case-insensitively (as the YAML directory does); AUTH users and ids exactly. */
function keyOf(query: TenantQuery): string {
  return `${query.by}:${query.by === 'sender' ? query.value.toLowerCase() : query.value}`;
}
