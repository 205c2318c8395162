// The Redis connection for what several relays share (limits, tenant invalidations, send-test outcomes).
// Every call has a deadline and nothing waits in a queue while Redis is away: a call fails at once and
// its caller falls back, so Redis being down or slow never holds mail. It reconnects by itself.
import { Redis } from 'ioredis';
import type { RedisSettings } from '../config/types.js';
import type { Logger } from './log.js';

export type { Redis } from 'ioredis';

export function connectRedis(settings: RedisSettings, logger: Logger, role: 'limits' | 'subscriber' | 'outcomes'): Redis {
  const url = new URL(settings.url);
  const subscriber = role === 'subscriber';
  const client = new Redis(settings.url, {
    connectionName: `tenant-relay-${role}`,
    connectTimeout: Math.max(1000, settings.timeoutMs * 4),
    // A subscriber waits for its channel; everything else must answer in time or not at all.
    ...(subscriber ? {} : { commandTimeout: settings.timeoutMs }),
    enableOfflineQueue: subscriber,
    maxRetriesPerRequest: subscriber ? null : 0,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    ...(url.protocol === 'rediss:' ? { tls: { ...(settings.ca !== undefined ? { ca: settings.ca } : {}), minVersion: 'TLSv1.2' as const } } : {}),
  });
  let up = false;
  client.on('ready', () => {
    if (!up) logger.info({ event: 'redis-connected', role, redis: redactedRedisUrl(settings.url) });
    up = true;
  });
  client.on('error', () => {
    // Reported where it matters: the caller that falls back logs why, once.
  });
  client.on('close', () => {
    if (up) logger.warn({ event: 'redis-disconnected', role, redis: redactedRedisUrl(settings.url) }, 'lost the connection to Redis; reconnecting');
    up = false;
  });
  return client;
}

/** The URL without its password, for logs. */
export function redactedRedisUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}
