// Limits shared through Redis: every process and replica draws on the same budgets, with the same windows
// as the memory store (a minute's worth at once, then an even pace; messages and recipients in a sliding
// 24 hours in 5-minute steps). Two short Lua scripts make each reservation and each settlement atomic
// across all the budgets of a message. A library would fit badly: rate-limiter-flexible's "day" is a
// fixed window from the first message, and it counts refused attempts; here only what was sent counts.
//
// While Redis is down or slow (every call has a deadline), limits are counted in this process's memory,
// each budget cut to this process's share (localShare, else 1 / the relays seen in the last 30 s), and a
// metric and a log line say so; shared counting resumes by itself when Redis answers again.
import os from 'node:os';
import type { LimitStoreSettings } from '../../config/types.js';
import type { Logger } from '../ops/log.js';
import type { RelayMetrics } from '../ops/metrics.js';
import type { Redis } from '../redis.js';
import type { Budget } from './budgets.js';
import { DAY_MS, type Limiter, type Reservation, shareOf, STEP_MS, STEPS } from './limiter.js';
import { MemoryLimiter } from './memory.js';

// KEYS: one hash per budget. ARGV: now, recipients, then per budget: per minute, per day, recipients per
// day (0: none). Returns {1, step} when taken from every budget, or {0, retryAt}.
const RESERVE = `
local now = tonumber(ARGV[1])
local rcpts = tonumber(ARGV[2])
local STEP, STEPS, DAY = ${STEP_MS}, ${STEPS}, ${DAY_MS}
local step = math.floor(now / STEP)

local function evict(key)
  local first = tonumber(redis.call('HGET', key, 'first'))
  if not first then return end
  local last = step - STEPS
  if last - first >= STEPS then
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.sub(field, 2, 2) == ':' then redis.call('HDEL', key, field) end
    end
    redis.call('HSET', key, 'mt', 0, 'rt', 0, 'first', last + 1)
    return
  end
  for s = first, last do
    local m = tonumber(redis.call('HGET', key, 'm:' .. s)) or 0
    local r = tonumber(redis.call('HGET', key, 'r:' .. s)) or 0
    if m ~= 0 or r ~= 0 then
      redis.call('HINCRBY', key, 'mt', -m)
      redis.call('HINCRBY', key, 'rt', -r)
      redis.call('HDEL', key, 'm:' .. s, 'r:' .. s)
    end
  end
  if last + 1 > first then redis.call('HSET', key, 'first', last + 1) end
end

local function whenFits(key, kind, max, add)
  local total = tonumber(redis.call('HGET', key, kind .. 't')) or 0
  if total + add <= max then return now end
  for i = 1, STEPS do
    local s = step - STEPS + i
    total = total - (tonumber(redis.call('HGET', key, kind .. ':' .. s)) or 0)
    if total + add <= max then return s * STEP + DAY end
  end
  return now + DAY
end

local retryAt = now
for i, key in ipairs(KEYS) do
  local perMinute, perDay, rcptsPerDay = tonumber(ARGV[i * 3]), tonumber(ARGV[i * 3 + 1]), tonumber(ARGV[i * 3 + 2])
  evict(key)
  if perMinute > 0 then
    local interval = 60000 / perMinute
    local tat = math.max(tonumber(redis.call('HGET', key, 'tat')) or now, now)
    if tat - now > 60000 - interval + 0.001 then retryAt = math.max(retryAt, math.ceil(tat - 60000 + interval)) end
  end
  if perDay > 0 then retryAt = math.max(retryAt, whenFits(key, 'm', perDay, 1)) end
  if rcptsPerDay > 0 then retryAt = math.max(retryAt, whenFits(key, 'r', rcptsPerDay, math.min(rcpts, rcptsPerDay))) end
end
if retryAt > now then return {0, retryAt} end

for i, key in ipairs(KEYS) do
  local perMinute = tonumber(ARGV[i * 3])
  if perMinute > 0 then
    local tat = math.max(tonumber(redis.call('HGET', key, 'tat')) or now, now)
    redis.call('HSET', key, 'tat', tostring(tat + 60000 / perMinute))
  end
  redis.call('HINCRBY', key, 'm:' .. step, 1)
  redis.call('HINCRBY', key, 'r:' .. step, rcpts)
  redis.call('HINCRBY', key, 'mt', 1)
  redis.call('HINCRBY', key, 'rt', rcpts)
  redis.call('HSETNX', key, 'first', step)
  redis.call('PEXPIRE', key, DAY + 2 * STEP)
end
return {1, step}
`;

// KEYS: the budgets of a reservation. ARGV: its step, recipients, recipients sent, then per budget its
// per-minute limit. What was not sent goes back, to its own step if that is still in the window.
const SETTLE = `
local step, rcpts, sent = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  if redis.call('HEXISTS', key, 'm:' .. step) == 1 then
    -- What was sent counts: fewer than reserved go back, more (pass-through reserves one) are added.
    if sent ~= rcpts then
      local r = tonumber(redis.call('HGET', key, 'r:' .. step)) or 0
      local change = math.max(sent - rcpts, -r)
      redis.call('HINCRBY', key, 'r:' .. step, change)
      redis.call('HINCRBY', key, 'rt', change)
    end
    if sent == 0 then
      redis.call('HINCRBY', key, 'm:' .. step, -1)
      redis.call('HINCRBY', key, 'mt', -1)
    end
  end
  local perMinute = tonumber(ARGV[3 + i])
  if sent == 0 and perMinute > 0 then
    local tat = tonumber(redis.call('HGET', key, 'tat'))
    if tat then redis.call('HSET', key, 'tat', tostring(tat - 60000 / perMinute)) end
  end
end
return 1
`;

// KEYS: the members set. ARGV: now, this process's id. Returns how many relays beat in the last 30 s.
const HEARTBEAT = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - 30000)
redis.call('PEXPIRE', KEYS[1], 60000)
return redis.call('ZCARD', KEYS[1])
`;

type Scripted = Redis & {
  trReserve(...args: (string | number)[]): Promise<[number, number]>;
  trSettle(...args: (string | number)[]): Promise<number>;
  trHeartbeat(key: string, now: number, id: string): Promise<number>;
};

/** After a failed call, this long on local counting before Redis is asked again (so a slow Redis costs one deadline, not one per message). */
const RETRY_AFTER_MS = 2000;
const HEARTBEAT_MS = 10_000;

export interface RedisLimiterDeps {
  readonly logger: Logger;
  readonly metrics: RelayMetrics;
  readonly settings: () => LimitStoreSettings;
}

export class RedisLimiter implements Limiter {
  readonly #redis: Scripted;
  readonly #prefix: string;
  readonly #deps: RedisLimiterDeps;
  readonly #local = new MemoryLimiter();
  readonly #id = `${os.hostname()}:${process.pid}`;
  readonly #heartbeat: NodeJS.Timeout;
  #processes = 1;
  #shared = true;
  #askAgainAt = 0;

  constructor(redis: Redis, prefix: string, deps: RedisLimiterDeps) {
    redis.defineCommand('trReserve', { lua: RESERVE });
    redis.defineCommand('trSettle', { lua: SETTLE });
    redis.defineCommand('trHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT });
    this.#redis = redis as Scripted;
    this.#prefix = prefix;
    this.#deps = deps;
    redis.on('ready', () => {
      this.#askAgainAt = 0;
      void this.#beat();
    });
    this.#heartbeat = setInterval(() => void this.#beat(), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** 1 while budgets are counted in Redis, 0 while this process counts alone. */
  get shared(): boolean {
    return this.#shared;
  }

  async reserve(budgets: readonly Budget[], recipients: number, now: number): Promise<Reservation> {
    if (budgets.length === 0) return { ok: true, settle: () => {} };
    if (Date.now() >= this.#askAgainAt) {
      const keys = budgets.map((b) => this.#key(b));
      try {
        const args = budgets.flatMap((b) => [b.limits.messagesPerMinute ?? 0, b.limits.messagesPerDay ?? 0, b.limits.recipientsPerDay ?? 0]);
        const [ok, value] = await this.#redis.trReserve(keys.length, ...keys, now, recipients, ...args);
        this.#up();
        if (ok !== 1) return { ok: false, retryAt: Number(value) };
        const perMinute = budgets.map((b) => b.limits.messagesPerMinute ?? 0);
        let settled = false;
        return {
          ok: true,
          settle: (sent) => {
            if (settled) return;
            settled = true;
            this.#redis.trSettle(keys.length, ...keys, Number(value), recipients, sent, ...perMinute).catch((err: Error) => this.#down(err));
          },
        };
      } catch (err) {
        this.#down(err as Error);
      }
    }
    return this.#local.reserveNow(budgets.map((b) => this.#localShareOf(b)), recipients, now);
  }

  close(): void {
    clearInterval(this.#heartbeat);
    this.#redis.zrem(`${this.#prefix}members`, this.#id).catch(() => undefined);
  }

  #key(b: Budget): string {
    return `${this.#prefix}limit:${b.key}`;
  }

  /** This process's part of a budget while it counts alone. */
  #localShareOf(b: Budget): Budget {
    return shareOf(b, this.#deps.settings().localShare ?? 1 / Math.max(1, this.#processes));
  }

  async #beat(): Promise<void> {
    try {
      this.#processes = Number(await this.#redis.trHeartbeat(`${this.#prefix}members`, Date.now(), this.#id)) || 1;
    } catch {
      // The count seen last stays: it is what a local share is cut by while Redis is away.
    }
  }

  #up(): void {
    if (this.#shared) return;
    this.#shared = true;
    this.#deps.logger.info({ event: 'limits-shared' }, 'Redis answers again: limits are counted in the shared store');
  }

  #down(err: Error): void {
    this.#askAgainAt = Date.now() + RETRY_AFTER_MS;
    this.#deps.metrics.limitStoreErrors.inc();
    if (!this.#shared) return;
    this.#shared = false;
    const share = this.#deps.settings().localShare ?? 1 / Math.max(1, this.#processes);
    this.#deps.logger.warn(
      { event: 'limits-local', reason: reasonOf(err), share, relaysSeen: this.#processes },
      'Redis does not answer: limits are counted in this process, at its share of each budget, until it does; mail keeps flowing',
    );
  }
}

/** ioredis's words for the two usual cases, in the operator's: not connected, or no answer in time. */
function reasonOf(err: Error): string {
  if (/isn't writeable|Connection is closed/i.test(err.message)) return 'not connected to Redis';
  if (/timed out/i.test(err.message)) return 'Redis timed out: no answer within timeoutMilliseconds';
  return err.message;
}
