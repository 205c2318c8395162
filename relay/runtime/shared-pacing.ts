// The cool-downs providers asked for (queue/pacing.ts), shared by the relays of a fleet through Redis: a
// relay that hears "slow down" or "quota used up" for a mailbox writes the cool-down to a sorted set (score:
// its end), and every relay reads the set every few seconds and waits it out too, so one provider reply
// pauses the whole fleet's mail to that mailbox, and the next one doubles the pause for all. Off the
// message path: a reading costs one Redis call per interval, whatever the traffic.
//
// What comes back from Redis steers whose mail waits, so it is checked like any outside value: signed with
// the relays' shared key (anyone else who can write to Redis cannot pause a tenant's mail), a known
// signal, an end within the longest cool-down from now, a bounded level, reason and count.
import type { RedisSettings } from '../../config/types.js';
import { sanitizeUpstreamText } from '../errors.js';
import type { Logger } from '../log.js';
import { ThrottledLog } from '../ops/throttled-log.js';
import { type PaceChange, type PacingFleet } from '../queue/pacing.js';
import type { Redis } from '../redis.js';
import { sign, verifyJson } from '../signed.js';

/** How often a relay reads the fleet's cool-downs. */
export const READ_EVERY_MS = 5000;
/** No cool-down lasts longer (pacing.ts's maximum, and a minute for clocks that differ): a later end was not written by a relay. */
const LONGEST_MS = 11 * 60_000;
/** At most this many running cool-downs are read at a time; ended ones are removed as new ones are told. */
const MOST = 500;
const MOST_LEVEL = 30;
const KIND = 'pacing';

interface Told {
  readonly m: string;
  readonly n: string;
  readonly s: PaceChange['signal'];
  readonly l: number;
  readonly u: number;
  readonly r: string;
}

export class SharedPacing implements PacingFleet {
  readonly #redis: Redis;
  readonly #key: string;
  readonly #signingKey: string;
  readonly #warnings: ThrottledLog;
  readonly #listeners: ((mailbox: string, upstream: string, change: PaceChange) => void)[] = [];
  readonly #timer: NodeJS.Timeout;

  constructor(redis: Redis, settings: Pick<RedisSettings, 'keyPrefix' | 'signingKey'>, logger: Logger, everyMs = READ_EVERY_MS) {
    this.#redis = redis;
    this.#key = `${settings.keyPrefix}pacing`;
    this.#signingKey = settings.signingKey;
    this.#warnings = new ThrottledLog(logger);
    this.#timer = setInterval(() => void this.read(), everyMs);
    this.#timer.unref();
  }

  tell(mailbox: string, upstream: string, change: PaceChange): void {
    const told: Told = { m: mailbox, n: upstream, s: change.signal, l: change.level, u: change.until, r: change.reason };
    const now = Date.now();
    this.#redis
      .multi()
      .zadd(this.#key, change.until, sign(this.#signingKey, KIND, JSON.stringify(told)))
      .zremrangebyscore(this.#key, '-inf', now)
      // Bounded whatever was written to the set: the latest ends are kept.
      .zremrangebyrank(this.#key, 0, -(MOST + 1))
      .pexpire(this.#key, LONGEST_MS)
      .exec()
      .catch(() => undefined);
  }

  listen(adopt: (mailbox: string, upstream: string, change: PaceChange) => void): void {
    this.#listeners.push(adopt);
  }

  /** Reads the running cool-downs and hands each good one to the listeners. Redis away: nothing to adopt now. */
  async read(now = Date.now()): Promise<void> {
    let entries: string[];
    try {
      entries = await this.#redis.zrangebyscore(this.#key, now, now + LONGEST_MS, 'LIMIT', 0, MOST);
    } catch {
      return;
    }
    for (const entry of entries) {
      const told = this.#checked(entry, now);
      if (!told) {
        this.#warnings.warn({ event: 'pacing-entry-ignored' }, 'a provider cool-down in Redis is not signed with limits.store.redis.signingKey or does not hold together: ignored');
        continue;
      }
      const change: PaceChange = { signal: told.s, level: told.l, until: told.u, reason: sanitizeUpstreamText(told.r, 400) };
      for (const adopt of this.#listeners) adopt(told.m, told.n, change);
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #checked(entry: string, now: number): Told | undefined {
    const { m, n, s, l, u, r } = (verifyJson(this.#signingKey, KIND, entry) ?? {}) as Partial<Told>;
    if (typeof m !== 'string' || m.length > 1000 || typeof n !== 'string' || n.length > 200 || typeof r !== 'string') return undefined;
    if ((s !== 'quota' && s !== 'throttle') || !Number.isInteger(l) || (l as number) < 0 || (l as number) > MOST_LEVEL) return undefined;
    if (typeof u !== 'number' || !Number.isFinite(u) || u <= now || u > now + LONGEST_MS) return undefined;
    return { m, n, s, l: l as number, u, r };
  }
}
