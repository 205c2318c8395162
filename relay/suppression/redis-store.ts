// Suppressions shared by a fleet through Redis: a key per tenant and address, its value signed with the
// relays' shared key, expiring with the entry (Redis drops it). A message's recipients are looked up in
// one MGET, of those the fleet's index (redis-index.ts) does not rule out. What comes back is checked
// like any outside value: an unsigned or malformed entry is ignored (nobody who can write to Redis can
// stop a tenant's mail to an address, or free one), and what it says is bounded.
import { sanitizeUpstreamText } from '../errors.js';
import type { Logger } from '../log.js';
import type { Redis } from '../redis.js';
import { type IndexChannels, indexKey, SuppressionIndex } from './redis-index.js';
import { sign, verifyJson } from '../signed.js';
import { MAX_ADDRESS, MAX_REASON, SUPPRESSION_SOURCES, type Suppression, type SuppressionSource, type SuppressionStore } from './store.js';

const KIND = 'suppression';
/** SCAN rounds of one listing, at most. */
const MAX_SCANS = 1000;

export class RedisSuppressions implements SuppressionStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #signingKey: string;

  readonly #channels: IndexChannels;
  readonly #index: SuppressionIndex | undefined;

  /** `subscriber` (a connection of its own): keeps an index of the fleet's list, so most checks ask no one. */
  constructor(redis: Redis, settings: { readonly keyPrefix: string; readonly signingKey: string }, index?: { readonly subscriber: Redis; readonly logger: Logger }) {
    this.#redis = redis;
    this.#prefix = `${settings.keyPrefix}suppress:`;
    this.#channels = { added: `${settings.keyPrefix}suppress-added`, removed: `${settings.keyPrefix}suppress-removed` };
    this.#signingKey = settings.signingKey;
    this.#index = index && new SuppressionIndex(redis, index.subscriber, { keyPrefix: this.#prefix, channels: this.#channels, logger: index.logger });
  }

  /** Whether the index is in step (else every check asks Redis). */
  get indexReady(): boolean {
    return this.#index?.ready === true;
  }

  async check(tenant: string, addresses: readonly string[], now: number): Promise<Map<string, Suppression>> {
    const found = new Map<string, Suppression>();
    if (addresses.length === 0) return found;
    const index = this.#index;
    const lower: string[] = [];
    for (const a of addresses) {
      const address = a.toLowerCase();
      const key = indexKey(tenant, address);
      if (index === undefined) lower.push(address);
      else if (index.mayHave(key)) {
        const known = index.confirmed(key, now);
        if (known) found.set(address, known);
        else lower.push(address);
      }
    }
    if (lower.length === 0) return found;
    const values = await this.#redis.mget(...lower.map((a) => this.#key(tenant, a)));
    values.forEach((v, i) => {
      const entry = v === null ? undefined : this.#entryOf(v, now);
      const address = lower[i];
      // The value names its own tenant and address: one copied under another key is ignored.
      if (entry && address !== undefined && entry.tenant === tenant && entry.address === address) {
        found.set(address, entry);
        index?.confirm(indexKey(tenant, address), entry);
      }
    });
    return found;
  }

  async add(e: Suppression): Promise<void> {
    const entry: Suppression = { ...e, address: e.address.toLowerCase().slice(0, MAX_ADDRESS), reason: sanitizeUpstreamText(e.reason, MAX_REASON) };
    const ttl = Math.max(1, Math.round(entry.expiresAt - Date.now()));
    // Told to every relay's index (a forged message there only costs a relay a question to Redis).
    const key = indexKey(entry.tenant, entry.address);
    const results = await this.#redis.pipeline().set(this.#key(entry.tenant, entry.address), sign(this.#signingKey, KIND, JSON.stringify(entry)), 'PX', ttl).publish(this.#channels.added, key).exec();
    const failed = results?.find(([err]) => err)?.[0];
    if (failed) throw failed;
    this.#index?.added(key);
  }

  async remove(tenant: string, address: string): Promise<boolean> {
    const key = indexKey(tenant, address.toLowerCase());
    this.#index?.removed(key);
    const results = await this.#redis.pipeline().del(this.#key(tenant, address.toLowerCase())).publish(this.#channels.removed, key).exec();
    const [err, deleted] = results?.[0] ?? [new Error('no answer'), 0];
    if (err) throw err;
    return Number(deleted) > 0;
  }

  async list(o: { tenant?: string; after?: string; prefix?: string; limit: number; now: number }): Promise<Suppression[]> {
    const pattern = `${this.#prefix}${o.tenant === undefined ? '*' : `${globSafe(o.tenant)}:${globSafe((o.prefix ?? '').toLowerCase())}*`}`;
    const found: Suppression[] = [];
    let cursor = '0';
    // Bounded: a listing reads the keyspace once at most, in rounds of a thousand keys.
    for (let round = 0; round < MAX_SCANS; round++) {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      const values = keys.length > 0 ? await this.#redis.mget(...keys) : [];
      for (const v of values) {
        const e = v === null ? undefined : this.#entryOf(v, o.now);
        if (e && (o.tenant === undefined || e.tenant === o.tenant)) found.push(e);
      }
      cursor = next;
      if (cursor === '0') break;
    }
    const keyOf = (e: Suppression) => (o.tenant === undefined ? `${e.tenant} ${e.address}` : e.address);
    return found
      .filter((e) => (o.after === undefined || keyOf(e) > o.after) && e.address.startsWith((o.prefix ?? '').toLowerCase()))
      .sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1))
      .slice(0, o.limit);
  }

  close(): void {
    // The connections are shared-state.ts's.
    this.#index?.close();
  }

  /** The index's key under the prefix: what its SCAN reads back is the index key. */
  #key(tenant: string, address: string): string {
    return `${this.#prefix}${indexKey(tenant, address)}`;
  }

  #entryOf(value: string, now: number): Suppression | undefined {
    const { tenant, address, reason, source, at, expiresAt } = (verifyJson(this.#signingKey, KIND, value) ?? {}) as Partial<Suppression>;
    if (typeof tenant !== 'string' || typeof address !== 'string' || address.length > MAX_ADDRESS || typeof reason !== 'string') return undefined;
    if (!SUPPRESSION_SOURCES.includes(source as SuppressionSource) || typeof at !== 'number' || typeof expiresAt !== 'number' || !(expiresAt > now)) return undefined;
    return { tenant, address, reason: sanitizeUpstreamText(reason, MAX_REASON), source: source as SuppressionSource, at, expiresAt };
  }
}

/** A tenant id in a SCAN pattern: its characters are letters, digits, - and _ (never a glob's). */
const globSafe = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');
