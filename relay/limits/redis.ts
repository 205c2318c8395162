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
import { ThrottledLog } from '../ops/throttled-log.js';
import type { RelayMetrics } from '../ops/metrics.js';
import type { Redis } from '../redis.js';
import { sign, verify } from '../signed.js';
import type { Budget } from './budgets.js';
import { DAY_MS, type Limiter, type Reservation, shareOf, STEP_MS, STEPS } from './limiter.js';
import { MemoryLimiter } from './memory.js';

// Every number the scripts read back is checked before it steers anything: the store is shared, and a
// value written by anyone else (a bug, an operator, a tenant app that can reach Redis) must not hold a
// tenant's mail for ever, nor make a script loop for ever. A budget whose values do not hold together
// (not a number, out of range, a window start far from now) is started again, and the caller is told.
const VALID = `
local function valid(v, lo, hi)
  local n = tonumber(v)
  if n == nil or n ~= n or n < lo or n > hi then return nil end
  return n
end
`;

// KEYS: one hash per budget. ARGV: now, recipients, then per budget: per minute, per day, recipients per
// day (0: none). Returns {1, step, resets} when taken from every budget, or {0, retryAt, resets}.
const RESERVE = `${VALID}
local now = tonumber(ARGV[1])
local rcpts = tonumber(ARGV[2])
local STEP, STEPS, DAY, MAXCOUNT = ${STEP_MS}, ${STEPS}, ${DAY_MS}, 1e12
local step = math.floor(now / STEP)
local resets = 0

local function sane(key)
  local first = redis.call('HGET', key, 'first')
  local mt = redis.call('HGET', key, 'mt')
  local rt = redis.call('HGET', key, 'rt')
  local tat = redis.call('HGET', key, 'tat')
  if (first and not valid(first, step - 2 * STEPS, step)) or (mt and not valid(mt, 0, MAXCOUNT)) or (rt and not valid(rt, 0, MAXCOUNT)) or (tat and not valid(tat, now - DAY, now + DAY)) then
    redis.call('DEL', key)
    resets = resets + 1
  end
end

local function count(key, field)
  return valid(redis.call('HGET', key, field), 0, MAXCOUNT) or 0
end

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
    local m = count(key, 'm:' .. s)
    local r = count(key, 'r:' .. s)
    if m ~= 0 or r ~= 0 then
      redis.call('HSET', key, 'mt', math.max(0, count(key, 'mt') - m), 'rt', math.max(0, count(key, 'rt') - r))
    end
    redis.call('HDEL', key, 'm:' .. s, 'r:' .. s)
  end
  if last + 1 > first then redis.call('HSET', key, 'first', last + 1) end
end

local function whenFits(key, kind, max, add)
  local total = count(key, kind .. 't')
  if total + add <= max then return now end
  for i = 1, STEPS do
    local s = step - STEPS + i
    total = total - count(key, kind .. ':' .. s)
    if total + add <= max then return s * STEP + DAY end
  end
  return now + DAY
end

local retryAt = now
for i, key in ipairs(KEYS) do
  local perMinute, perDay, rcptsPerDay = tonumber(ARGV[i * 3]), tonumber(ARGV[i * 3 + 1]), tonumber(ARGV[i * 3 + 2])
  sane(key)
  evict(key)
  if perMinute > 0 then
    local interval = math.min(60000 / perMinute, DAY)
    local tat = math.max(tonumber(redis.call('HGET', key, 'tat')) or now, now)
    if tat - now > 60000 - interval + 0.001 then retryAt = math.max(retryAt, math.ceil(tat - 60000 + interval)) end
  end
  if perDay > 0 then retryAt = math.max(retryAt, whenFits(key, 'm', perDay, 1)) end
  if rcptsPerDay > 0 then retryAt = math.max(retryAt, whenFits(key, 'r', rcptsPerDay, math.min(rcpts, rcptsPerDay))) end
end
if retryAt > now then return {0, math.min(retryAt, now + DAY), resets} end

for i, key in ipairs(KEYS) do
  local perMinute = tonumber(ARGV[i * 3])
  if perMinute > 0 then
    local tat = math.max(tonumber(redis.call('HGET', key, 'tat')) or now, now)
    redis.call('HSET', key, 'tat', tostring(tat + math.min(60000 / perMinute, DAY)))
  end
  redis.call('HSET', key, 'm:' .. step, count(key, 'm:' .. step) + 1, 'r:' .. step, count(key, 'r:' .. step) + rcpts)
  redis.call('HSET', key, 'mt', count(key, 'mt') + 1, 'rt', count(key, 'rt') + rcpts)
  redis.call('HSETNX', key, 'first', step)
  redis.call('PEXPIRE', key, DAY + 2 * STEP)
end
return {1, step, resets}
`;

// KEYS: the budgets of a reservation. ARGV: its step, recipients, recipients sent, now, then per budget its
// per-minute limit. What was not sent goes back, to its own step if that is still in the window.
const SETTLE = `${VALID}
local step, rcpts, sent, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local DAY, MAXCOUNT = ${DAY_MS}, 1e12
for i, key in ipairs(KEYS) do
  local m = valid(redis.call('HGET', key, 'm:' .. step), 0, MAXCOUNT)
  if m then
    local r = valid(redis.call('HGET', key, 'r:' .. step), 0, MAXCOUNT) or 0
    local mt = valid(redis.call('HGET', key, 'mt'), 0, MAXCOUNT) or 0
    local rt = valid(redis.call('HGET', key, 'rt'), 0, MAXCOUNT) or 0
    -- What was sent counts: fewer than reserved go back, more (pass-through reserves one) are added.
    local change = math.max(sent - rcpts, -r)
    redis.call('HSET', key, 'r:' .. step, r + change, 'rt', math.max(0, rt + change))
    if sent == 0 then redis.call('HSET', key, 'm:' .. step, math.max(0, m - 1), 'mt', math.max(0, mt - 1)) end
  end
  local perMinute = tonumber(ARGV[4 + i])
  if sent == 0 and perMinute > 0 then
    local tat = valid(redis.call('HGET', key, 'tat'), now - DAY, now + DAY)
    if tat then redis.call('HSET', key, 'tat', tostring(tat - math.min(60000 / perMinute, DAY))) end
  end
end
return 1
`;

// KEYS: the members set. ARGV: now, this process's signed entry, the most entries to hand back. Returns
// the entries of the last 30 s: the caller counts those whose signature is good (others may have written
// any), so the count of relays cannot be inflated from outside.
const HEARTBEAT = `
local now = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 30000)
redis.call('PEXPIRE', KEYS[1], 60000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - 30000, now + 30000, 'LIMIT', 0, tonumber(ARGV[3]))
`;

type Scripted = Redis & {
  trReserve(...args: (string | number)[]): Promise<[number, number, number]>;
  trSettle(...args: (string | number)[]): Promise<number>;
  trHeartbeat(key: string, now: number, entry: string, most: number): Promise<string[]>;
};

/** After a failed call, this long on local counting before Redis is asked again (so a slow Redis costs one deadline, not one per message). */
const RETRY_AFTER_MS = 2000;
const HEARTBEAT_MS = 10_000;
/** At most this many relays are counted for a local share (and read back from the members set). */
export const MAX_RELAYS = 256;
/** An answer from Redis that is not a time to wait for: the message asks again this much later. */
const BAD_ANSWER_BACKOFF_MS = 30_000;

export interface RedisLimiterDeps {
  readonly logger: Logger;
  readonly metrics: RelayMetrics;
  readonly settings: () => LimitStoreSettings;
  /** The relays' shared signing key: heartbeats are signed with it, and only signed ones counted. */
  readonly signingKey: string;
}

export class RedisLimiter implements Limiter {
  readonly #redis: Scripted;
  readonly #prefix: string;
  readonly #deps: RedisLimiterDeps;
  readonly #local = new MemoryLimiter();
  readonly #id = `${os.hostname()}:${process.pid}`;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #warnings: ThrottledLog;
  /** Heartbeat entries this process wrote lately (removed when it closes). */
  #written: string[] = [];
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
    this.#warnings = new ThrottledLog(deps.logger);
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

  /** The relays counted in the last heartbeat (this one included). */
  get relaysSeen(): number {
    return this.#processes;
  }

  async reserve(budgets: readonly Budget[], recipients: number, now: number): Promise<Reservation> {
    if (budgets.length === 0) return { ok: true, settle: () => {} };
    if (Date.now() >= this.#askAgainAt) {
      const keys = budgets.map((b) => this.#key(b));
      try {
        const args = budgets.flatMap((b) => [b.limits.messagesPerMinute ?? 0, b.limits.messagesPerDay ?? 0, b.limits.recipientsPerDay ?? 0]);
        const [ok, value, resets] = await this.#redis.trReserve(keys.length, ...keys, now, recipients, ...args);
        this.#up();
        if (Number(resets) > 0) {
          this.#deps.metrics.limitStoreErrors.inc();
          this.#warnings.warn({ event: 'limit-store-values-reset', budgets: budgets.map((b) => b.key) }, 'a budget in Redis held values that were not valid (not numbers, or out of range): it was started again');
        }
        if (ok !== 1) {
          const retryAt = Number(value);
          // Never a time at or before now (the message would be asked about again at once, for ever) nor past a day.
          if (Number.isFinite(retryAt) && retryAt > now && retryAt <= now + DAY_MS + STEP_MS) return { ok: false, retryAt };
          this.#deps.metrics.limitStoreErrors.inc();
          this.#warnings.warn({ event: 'limit-store-bad-answer', answer: String(value).slice(0, 40) }, 'Redis answered a time to wait that is not one; the message asks again later');
          return { ok: false, retryAt: now + BAD_ANSWER_BACKOFF_MS };
        }
        const perMinute = budgets.map((b) => b.limits.messagesPerMinute ?? 0);
        let settled = false;
        return {
          ok: true,
          settle: (sent) => {
            if (settled) return;
            settled = true;
            this.#redis.trSettle(keys.length, ...keys, Number(value), recipients, sent, Date.now(), ...perMinute).catch((err: Error) => this.#down(err));
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
    if (this.#written.length > 0) this.#redis.zrem(`${this.#prefix}members`, ...this.#written).catch(() => undefined);
  }

  #key(b: Budget): string {
    return `${this.#prefix}limit:${b.key}`;
  }

  /** This process's part of a budget while it counts alone. */
  #localShareOf(b: Budget): Budget {
    return shareOf(b, this.#deps.settings().localShare ?? 1 / Math.max(1, this.#processes));
  }

  /**
   * Says this relay is alive, and counts the relays that said so in the last 30 s: only entries signed
   * with the shared key, fresh, each relay once, at most MAX_RELAYS. Entries anyone else wrote count for
   * nothing, so the set cannot be padded to shrink every relay's local share.
   */
  async #beat(): Promise<void> {
    const now = Date.now();
    const entry = sign(this.#deps.signingKey, 'relay', `${this.#id}|${now}`);
    try {
      const entries = await this.#redis.trHeartbeat(`${this.#prefix}members`, now, entry, 4 * MAX_RELAYS);
      this.#written = [...this.#written.slice(-3), entry];
      const relays = new Set<string>();
      for (const e of Array.isArray(entries) ? entries : []) {
        const value = typeof e === 'string' ? verify(this.#deps.signingKey, 'relay', e) : undefined;
        const bar = value?.lastIndexOf('|') ?? -1;
        if (!value || bar < 0 || Math.abs(now - Number(value.slice(bar + 1))) > 40_000) continue;
        relays.add(value.slice(0, bar));
      }
      this.#processes = Math.min(MAX_RELAYS, Math.max(1, relays.size));
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
