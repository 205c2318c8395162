// The suppression store a config names: Redis with limits.store.redis (shared by the fleet), else
// suppressions.db beside the spool root (shared by the workers). For the processes that do not run the
// relay's shared state: the commands, and the primary of workers.
import path from 'node:path';
import type { Config } from '../../config/types.js';
import type { Logger } from '../log.js';
import { connectRedis } from '../redis.js';
import { LocalSuppressions } from './local-store.js';
import { RedisSuppressions } from './redis-store.js';
import type { SuppressionStore } from './store.js';

export const suppressionFileOf = (config: Config) => path.join(config.delivery.spool.path, 'suppressions.db');

export function openSuppressions(config: Config, logger: Logger): { readonly store: SuppressionStore; close(): void } {
  const settings = config.limits.redis;
  if (!settings) {
    const store = new LocalSuppressions(suppressionFileOf(config));
    return { store, close: () => store.close() };
  }
  const redis = connectRedis(settings, logger, 'limits');
  return { store: new RedisSuppressions(redis, settings), close: () => redis.disconnect() };
}
