// What several relays share: sending limits, providers' cool-downs, send-test outcomes, suppressions and
// tenant invalidations. Through Redis when limits.store.redis is set (one connection, and one more that
// listens: the suppression index's additions, the tenant invalidations), else in this process (a worker
// among N counts its share of every limit).
import type { Config } from '../../config/types.js';
import type { Limiter } from '../limits/limiter.js';
import { MemoryLimiter } from '../limits/memory.js';
import { RedisLimiter } from '../limits/redis.js';
import type { Logger } from '../log.js';
import type { SendTestRecord, SharedOutcomes } from '../observe/send-tests.js';
import type { RelayMetrics } from '../ops/metrics.js';
import { ThrottledLog } from '../ops/throttled-log.js';
import type { PacingFleet } from '../queue/pacing.js';
import { connectRedis } from '../redis.js';
import { sign, verify } from '../signed.js';
import { SharedPacing } from './shared-pacing.js';
import { LocalSuppressions } from '../suppression/local-store.js';
import { RedisSuppressions } from '../suppression/redis-store.js';
import type { SuppressionStore } from '../suppression/store.js';
import { InvalidationWindow } from '../tenancy/invalidations.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';

export interface SharedState {
  readonly limiter: Limiter;
  readonly outcomes?: SharedOutcomes;
  /** The cool-downs providers asked for, shared by the fleet (absent without a store). */
  readonly pacing?: PacingFleet;
  /** Addresses each tenant's mail does not go to: in Redis, else in a file beside the spool. */
  readonly suppression: SuppressionStore;
  /** 1 while limits are counted in Redis, 0 while this process counts alone; undefined without a store. */
  limitsShared(): number | undefined;
  /** A reloaded config: a rotated Redis password is used from the next connection on. */
  apply(next: Config): void;
  close(): void;
}

export interface SharedStateDeps {
  readonly logger: Logger;
  readonly metrics: RelayMetrics;
  readonly config: () => Config;
  readonly platform: () => PlatformTenants | undefined;
  /** Without a store: this process's part of every limit (1 / workers). */
  readonly limitShare: number;
  /** Where the count of relays is remembered across a restart. */
  readonly stateFile: string;
  /** Where suppressions are kept without Redis (beside the spool root, shared by workers). */
  readonly suppressionFile: string;
}

export function sharedState(config: Config, deps: SharedStateDeps): SharedState {
  const settings = config.limits.redis;
  if (!settings) {
    if (deps.limitShare < 1) deps.logger.info({ event: 'limits-per-worker', share: deps.limitShare }, 'no limits.store: each worker counts its share of every limit in its own memory');
    const suppression = new LocalSuppressions(deps.suppressionFile);
    return { limiter: new MemoryLimiter(deps.limitShare), suppression, limitsShared: () => undefined, apply: () => {}, close: () => suppression.close() };
  }
  const { logger } = deps;
  const { signingKey } = settings;
  const redis = connectRedis(settings, logger, 'limits');
  const limiter = new RedisLimiter(redis, settings.keyPrefix, { logger, metrics: deps.metrics, settings: () => deps.config().limits, signingKey, stateFile: deps.stateFile });
  const pacing = new SharedPacing(redis, settings, logger);
  const warnings = new ThrottledLog(logger);
  // Read back only when signed by a relay: anyone else who can write to Redis cannot forge an outcome.
  const outcomes: SharedOutcomes = {
    put: (token, record) => void redis.set(`${settings.keyPrefix}send-test:${token}`, sign(signingKey, `send-test:${token}`, JSON.stringify(record)), 'PX', 3_600_000).catch(() => undefined),
    get: async (token) => {
      const text = await redis.get(`${settings.keyPrefix}send-test:${token}`);
      if (!text) return undefined;
      const value = verify(signingKey, `send-test:${token}`, text);
      if (value === undefined) warnings.warn({ event: 'send-test-outcome-unsigned', token }, 'a send-test outcome in Redis is not signed with limits.store.redis.signingKey: ignored');
      return value === undefined ? undefined : (JSON.parse(value) as SendTestRecord);
    },
  };
  // One connection listens: to the suppression index's additions, and to the tenant invalidations.
  const subscriber = connectRedis(settings, logger, 'subscriber');
  const channel = config.tenantSource?.invalidationChannel;
  if (channel) {
    subscriber.subscribe(channel).catch((err: Error) => logger.warn({ event: 'invalidation-subscribe-failed', channel, err: err.message }));
    const invalidations = new InvalidationWindow((ids) => deps.platform()?.invalidate(ids) ?? 0, logger);
    subscriber.on('message', (from: string, message: string) => from === channel && invalidations.take(message));
  }
  const suppression = new RedisSuppressions(redis, settings, { subscriber, logger });
  return {
    limiter,
    outcomes,
    pacing,
    suppression,
    limitsShared: () => (limiter.shared ? 1 : 0),
    apply: (next) => {
      const url = next.limits.redis?.url;
      // Connections made stay logged in (Redis keeps them when a password changes): the new one is for
      // the next reconnection. Another server is a restart (reload.ts says so).
      if (url === undefined || !sameServer(url, settings.url)) return;
      for (const client of [redis, subscriber]) if (client) Object.assign(client.options, loginOf(url));
    },
    close: () => {
      limiter.close();
      pacing.close();
      suppression.close();
      redis.disconnect();
      subscriber.disconnect();
    },
  };
}

/** The same Redis server and database, whatever the login. */
function sameServer(a: string, b: string): boolean {
  const [x, y] = [new URL(a), new URL(b)];
  return x.protocol === y.protocol && x.host === y.host && x.pathname === y.pathname;
}

/** The user and password of a redis:// URL, as ioredis keeps them in its options. */
function loginOf(url: string): { username: string | undefined; password: string | undefined } {
  const u = new URL(url);
  return { username: u.username ? decodeURIComponent(u.username) : undefined, password: u.password ? decodeURIComponent(u.password) : undefined };
}
