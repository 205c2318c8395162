// Which (tenant, address) pairs the fleet has suppressed, as a Bloom filter in each relay: most
// recipients are on no list, and the filter says so in a microsecond, where asking Redis costs a round
// trip (~60 us of the relay's CPU for an app sending one message at a time, npm run bench). The filter
// never forgets (a removed or expired entry is a false positive: Redis is asked, and says no), and never
// misses while it is in step: it is filled from a SCAN of the keys after subscribing to the channel every
// relay publishes its additions on, and each addition is put into it. While the subscription is down, or
// before the first fill, it is not in step and every check asks Redis. Rebuilt hourly (what expired or
// was removed goes), and when it has taken in more than it was sized for (at most every ten minutes). An entry Redis confirmed is
// kept a minute, so a suppressed address asks once a minute, not once a message.
import type { Logger } from '../log.js';
import type { Redis } from '../redis.js';
import type { Suppression } from './store.js';

const REBUILD_MS = 3_600_000;
const RETRY_MS = 5_000;
const MIN_CAPACITY = 1 << 16;
const BITS_PER_ENTRY = 10;
const HASHES = 7;
/** SCAN rounds of one fill, at most (of 1,000 keys each). */
const MAX_SCANS = 20_000;
/**
 * Entries Redis confirmed, kept this long and this many at most: a removal heard on the channel drops
 * one at once, but the answer and the removal come on two connections, so a removal can be heard before
 * an answer that predates it; this bounds how long such an entry can outlive its removal.
 */
const CONFIRMED_MS = 60_000;
const MAX_CONFIRMED = 10_000;
const GROWTH_FILL_MS = 10 * 60_000;
/** A tenant id, ":" and an address (relay/suppression/store.ts MAX_ADDRESS) fit. */
const MAX_KEY = 400;

/** A Bloom filter of strings (~1 % false positives at its capacity). */
export class BloomFilter {
  readonly #bits: Uint32Array;
  readonly #size: number;
  readonly capacity: number;
  count = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.#size = capacity * BITS_PER_ENTRY;
    this.#bits = new Uint32Array(Math.ceil(this.#size / 32));
  }

  add(key: string): void {
    this.count++;
    const [h1, h2] = hashes(key);
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + i * h2) % this.#size;
      this.#bits[bit >>> 5] = (this.#bits[bit >>> 5] ?? 0) | (1 << (bit & 31));
    }
  }

  has(key: string): boolean {
    const [h1, h2] = hashes(key);
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + i * h2) % this.#size;
      if (((this.#bits[bit >>> 5] ?? 0) & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** Two independent 32-bit hashes (FNV-1a, and a multiplicative one), for double hashing. */
function hashes(key: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return [a >>> 0, (b | 1) >>> 0];
}

export const indexKey = (tenant: string, address: string) => `${tenant}:${address}`;

export interface IndexChannels {
  /** Where relays publish each (tenant, address) they suppress. */
  readonly added: string;
  /** Where relays publish each they remove. */
  readonly removed: string;
}

export class SuppressionIndex {
  readonly #redis: Redis;
  readonly #subscriber: Redis;
  readonly #pattern: string;
  readonly #keyPrefix: string;
  readonly #channels: IndexChannels;
  readonly #logger: Logger;
  readonly #confirmed = new Map<string, { readonly entry: Suppression; readonly until: number }>();
  #filter: BloomFilter | undefined;
  /** Additions heard while a fill is under way: they go into the new filter too. */
  #filling: BloomFilter | undefined;
  #again = false;
  #closed = false;
  /** Subscribed to both channels, on the subscriber's present connection. */
  #subscribed = false;
  /** Counts the subscription's drops. */
  #generation = 0;
  /** When the filter was last refilled for having grown past its size. */
  #grownAt = 0;
  readonly #timer: NodeJS.Timeout;

  /** `subscriber`: a connection of its own, in subscriber mode (its reconnections refill the filter). */
  constructor(redis: Redis, subscriber: Redis, o: { keyPrefix: string; channels: IndexChannels; logger: Logger }) {
    this.#redis = redis;
    this.#subscriber = subscriber;
    this.#keyPrefix = o.keyPrefix;
    this.#pattern = `${o.keyPrefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    this.#channels = o.channels;
    this.#logger = o.logger;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.#channels.added) this.added(message);
      else if (channel === this.#channels.removed) this.#confirmed.delete(message);
    });
    // Every (re)connection: subscribe, then fill, so nothing added in between is missed.
    subscriber.on('ready', () => void this.#subscribeAndFill());
    subscriber.on('close', () => {
      this.#filter = undefined;
      this.#subscribed = false;
      this.#confirmed.clear();
      this.#generation++;
    });
    if (subscriber.status === 'ready') void this.#subscribeAndFill();
    // The fill reads through the other connection, which queues nothing while it is down: once it is up.
    redis.on('ready', () => {
      if (!this.#filter && this.#subscribed) void this.#fill();
    });
    this.#timer = setInterval(() => this.#subscribed && void this.#fill(), REBUILD_MS);
    this.#timer.unref();
  }

  /** False only when the pair is surely not suppressed; true when it may be (or the filter is not in step). */
  mayHave(key: string): boolean {
    return this.#filter === undefined || this.#filter.has(key);
  }

  /** An addition (this relay's own, or heard on the channel). */
  added(key: string): void {
    // Anyone who can publish on the channel can send anything: a key is an address's length at most.
    if (key.length > MAX_KEY) return;
    this.#filter?.add(key);
    this.#filling?.add(key);
    // Past its size the false positives grow (never false negatives): a bigger one, but not more often
    // than every few minutes (a flood on the channel must not keep the relay scanning).
    if (this.#filter && this.#filter.count > this.#filter.capacity && Date.now() - this.#grownAt > GROWTH_FILL_MS) {
      this.#grownAt = Date.now();
      void this.#fill();
    }
  }

  /** An entry Redis confirmed lately (while in step), still in force at `now`. */
  confirmed(key: string, now: number): Suppression | undefined {
    const c = this.#confirmed.get(key);
    if (!c) return undefined;
    if (c.until > Date.now() && c.entry.expiresAt > now) return c.entry;
    this.#confirmed.delete(key);
    return undefined;
  }

  /** A verified entry from Redis: the next check of it asks no one (for a while). */
  confirm(key: string, entry: Suppression): void {
    if (!this.#filter) return;
    // Oldest first (a Map keeps insertion order).
    for (const k of this.#confirmed.keys()) {
      if (this.#confirmed.size < MAX_CONFIRMED) break;
      this.#confirmed.delete(k);
    }
    this.#confirmed.set(key, { entry, until: Date.now() + CONFIRMED_MS });
  }

  /** This relay's own removal (others' are heard on the channel). */
  removed(key: string): void {
    this.#confirmed.delete(key);
  }

  get ready(): boolean {
    return this.#filter !== undefined;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  async #subscribeAndFill(): Promise<void> {
    try {
      await this.#subscriber.subscribe(this.#channels.added, this.#channels.removed);
      this.#subscribed = true;
    } catch (err) {
      this.#logger.warn({ event: 'suppression-index-subscribe-failed', err: (err as Error).message }, 'every suppression check asks Redis until the subscription is back');
      return;
    }
    await this.#fill();
  }

  async #fill(): Promise<void> {
    if (this.#filling) {
      this.#again = true;
      return;
    }
    const started = Date.now();
    const generation = this.#generation;
    try {
      // Sized for every key of the database at most (the suppressions among them are not counted yet).
      const keys = Math.min(await this.#redis.dbsize(), MAX_SCANS * 1000);
      const filling = new BloomFilter(Math.max(MIN_CAPACITY, 2 ** Math.ceil(Math.log2(Math.max(1, keys * 1.5)))));
      this.#filling = filling;
      let cursor = '0';
      for (let round = 0; round < MAX_SCANS && !this.#closed; round++) {
        const [next, found] = await this.#redis.scan(cursor, 'MATCH', this.#pattern, 'COUNT', 1000);
        for (const key of found) filling.add(key.slice(this.#keyPrefix.length));
        cursor = next;
        if (cursor === '0') break;
      }
      if (cursor !== '0') throw new Error(`more than ${MAX_SCANS * 1000} keys`);
      // Not if the subscription dropped meanwhile: an addition may have gone unheard (the next fill).
      if (generation === this.#generation && this.#subscribed) this.#filter = filling;
      this.#logger.info({ event: 'suppression-index-filled', entries: filling.count, ms: Date.now() - started });
    } catch (err) {
      this.#filter = undefined;
      this.#logger.warn({ event: 'suppression-index-fill-failed', err: (err as Error).message }, 'every suppression check asks Redis until the next fill');
      // Redis away, or the other connection not up yet (it queues nothing): again in a while.
      if (!this.#closed && this.#subscribed) setTimeout(() => void this.#fill(), RETRY_MS).unref();
    } finally {
      this.#filling = undefined;
    }
    if (this.#again && !this.#closed) {
      this.#again = false;
      await this.#fill();
    }
  }
}
