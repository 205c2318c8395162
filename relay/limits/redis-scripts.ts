// The Lua scripts of the Redis limit store (limits/redis.ts): each makes one reservation or settlement
// atomic across all the budgets of a message, or keeps the fleet's heartbeat. Kept apart from the
// TypeScript that calls them so each reads on its own.
import { DAY_MS, STEP_MS, STEPS } from './limiter.js';

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

// KEYS: per budget, its hash (day counts) and its minute window (a sorted set of reservation times).
// ARGV: now, recipients, this reservation's member name, then per budget: the window's message count
// and length (0: none), per day, recipients per day (0: none). Returns {1, step, resets, counts...}
// when taken from every budget, or {0, retryAt, resets, blocking budget, which limit (1 minute, 2 day
// messages, 3 day recipients), counts...}; counts: each window's messages, this one included if taken.
export const RESERVE = `${VALID}
local now = tonumber(ARGV[1])
local rcpts = tonumber(ARGV[2])
local member = ARGV[3]
local STEP, STEPS, DAY, MAXCOUNT = ${STEP_MS}, ${STEPS}, ${DAY_MS}, 1e12
local step = math.floor(now / STEP)
local resets = 0
local budgets = #KEYS / 2

local function sane(key)
  local first = redis.call('HGET', key, 'first')
  local mt = redis.call('HGET', key, 'mt')
  local rt = redis.call('HGET', key, 'rt')
  if (first and not valid(first, step - 2 * STEPS, step)) or (mt and not valid(mt, 0, MAXCOUNT)) or (rt and not valid(rt, 0, MAXCOUNT)) then
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

-- The minute window: entries older than it leave; entries from the future (no relay writes those) are
-- dropped; a set grown far past its limit is cut to it. Returns how many remain, and when the oldest of
-- the last 'limit' of them leaves (the moment one more fits), when the window is full.
local function window(wkey, limit, length)
  redis.call('ZREMRANGEBYSCORE', wkey, '-inf', now - length)
  redis.call('ZREMRANGEBYSCORE', wkey, '(' .. (now + 1000), '+inf')
  local n = redis.call('ZCARD', wkey)
  if n > 4 * limit + 100 then
    redis.call('ZREMRANGEBYRANK', wkey, 0, n - limit - 1)
    n = limit
    resets = resets + 1
  end
  if n < limit then return n, now end
  local oldest = redis.call('ZRANGE', wkey, n - limit, n - limit, 'WITHSCORES')
  return n, (tonumber(oldest[2]) or now) + length
end

local retryAt, blocking, which = now, 0, 0
local counts = {}
local function later(at, i, w)
  if at > retryAt then retryAt, blocking, which = at, i, w end
end
for i = 1, budgets do
  local key, wkey = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, length, perDay, rcptsPerDay = tonumber(ARGV[4 * i]), tonumber(ARGV[4 * i + 1]), tonumber(ARGV[4 * i + 2]), tonumber(ARGV[4 * i + 3])
  sane(key)
  evict(key)
  counts[i] = 0
  if limit > 0 then
    local n, at = window(wkey, limit, length)
    counts[i] = n
    later(at, i, 1)
  end
  if perDay > 0 then later(whenFits(key, 'm', perDay, 1), i, 2) end
  if rcptsPerDay > 0 then later(whenFits(key, 'r', rcptsPerDay, math.min(rcpts, rcptsPerDay)), i, 3) end
end
if retryAt > now then
  local answer = {0, math.min(retryAt, now + DAY), resets, blocking, which}
  for i = 1, budgets do answer[5 + i] = counts[i] end
  return answer
end

for i = 1, budgets do
  local key, wkey = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, length = tonumber(ARGV[4 * i]), tonumber(ARGV[4 * i + 1])
  if limit > 0 then
    redis.call('ZADD', wkey, now, member)
    redis.call('PEXPIRE', wkey, 2 * length)
    counts[i] = counts[i] + 1
  end
  redis.call('HSET', key, 'm:' .. step, count(key, 'm:' .. step) + 1, 'r:' .. step, count(key, 'r:' .. step) + rcpts)
  redis.call('HSET', key, 'mt', count(key, 'mt') + 1, 'rt', count(key, 'rt') + rcpts)
  redis.call('HSETNX', key, 'first', step)
  redis.call('PEXPIRE', key, DAY + 2 * STEP)
end
local answer = {1, step, resets}
for i = 1, budgets do answer[3 + i] = counts[i] end
return answer
`;

// KEYS: the budgets of a reservation, hash and window each. ARGV: its step, recipients, recipients sent,
// its member name. What was not sent goes back, to its own step if that is still in the window.
export const SETTLE = `${VALID}
local step, rcpts, sent, member = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local MAXCOUNT = 1e12
for i = 1, #KEYS / 2 do
  local key, wkey = KEYS[2 * i - 1], KEYS[2 * i]
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
  if sent == 0 then redis.call('ZREM', wkey, member) end
end
return 1
`;

// KEYS: one minute window. ARGV: its length, then times of messages a relay sent while it counted alone.
export const BACKFILL = `
local length = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], tonumber(ARGV[i]), 'alone-' .. ARGV[i] .. '-' .. i) end
redis.call('PEXPIRE', KEYS[1], 2 * length)
return 1
`;

// KEYS: the members set. ARGV: now, this process's signed entry, the most entries to hand back. Returns
// the entries of the last 30 s: the caller counts those whose signature is good (others may have written
// any), so the count of relays cannot be inflated from outside.
export const HEARTBEAT = `
local now = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 30000)
redis.call('PEXPIRE', KEYS[1], 60000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - 30000, now + 30000, 'LIMIT', 0, tonumber(ARGV[3]))
`;
