// Limits shared through Redis: every process and replica draws on the same budgets, with the same windows
// as the memory store (messages per minute in a sliding window: no 60 seconds hold more than the limit;
// messages and recipients in a sliding 24 hours in 5-minute steps). Short Lua scripts make each
// reservation and each settlement atomic across all the budgets of a message. A library would fit badly:
// rate-limiter-flexible's "day" is a fixed window from the first message, and it counts refused attempts;
// here only what was sent counts.
//
// While Redis is down or slow (every call has a deadline), limits are counted in this process's memory at
// its share of each budget (localShare, else 1 / the relays seen lately, remembered across a restart). Its
// share of a minute window is what the fleet left of it: what the fleet had sent by the last answer, plus
// as much as it could have sent since, as late as it could have (the others' last messages are unknown),
// so no window holds more than the limit. What it sent alone is told to Redis when Redis is back. A metric
// and a log line say when it counts alone; shared counting resumes by itself.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import type { LimitStoreSettings } from '../../config/types.js';
import type { Logger } from '../log.js';
import { ThrottledLog } from '../ops/throttled-log.js';
import type { RelayMetrics } from '../ops/metrics.js';
import { PRIVATE_FILE } from '../private-files.js';
import type { Redis } from '../redis.js';
import { sign, verify } from '../signed.js';
import type { Budget } from './budgets.js';
import { DAY_MS, type LimitName, type Limiter, minuteWindow, type Reservation, STEP_MS } from './limiter.js';
import { MemoryLimiter } from './memory.js';
import { BACKFILL, HEARTBEAT, RESERVE, SETTLE } from './redis-scripts.js';

type Scripted = Redis & {
  trReserve(...args: (string | number)[]): Promise<number[]>;
  trSettle(...args: (string | number)[]): Promise<number>;
  trBackfill(...args: (string | number)[]): Promise<number>;
  trHeartbeat(key: string, now: number, entry: string, most: number): Promise<string[]>;
};

/** After a failed call, this long on local counting before Redis is asked again (so a slow Redis costs one deadline, not one per message). */
const RETRY_AFTER_MS = 2000;
const HEARTBEAT_MS = 10_000;
/** At most this many relays are counted for a local share (and read back from the members set). */
export const MAX_RELAYS = 256;
/** An answer from Redis that is not a time to wait for: the message asks again this much later. */
const BAD_ANSWER_BACKOFF_MS = 30_000;
/** An answer this recent tells what the fleet's window held when this process began counting alone. */
const FRESH_ANSWER_MS = 1000;
/** How long a count of relays remembered from before a restart is believed. */
const REMEMBER_RELAYS_MS = 10 * 60_000;
const LIMITS: readonly LimitName[] = ['messagesPerMinute', 'messagesPerDay', 'recipientsPerDay'];

export interface RedisLimiterDeps {
  readonly logger: Logger;
  readonly metrics: RelayMetrics;
  readonly settings: () => LimitStoreSettings;
  /** The relays' shared signing key: heartbeats are signed with it, and only signed ones counted. */
  readonly signingKey: string;
  /** Where the count of relays is remembered across a restart (a file beside the spool). */
  readonly stateFile?: string;
}

/** What the fleet had sent in a budget's minute window at this process's last answer from Redis. */
interface Seen {
  readonly count: number;
  readonly limit: number;
  readonly windowMs: number;
  readonly at: number;
}

export class RedisLimiter implements Limiter {
  readonly #redis: Scripted;
  readonly #prefix: string;
  readonly #deps: RedisLimiterDeps;
  readonly #local: MemoryLimiter;
  /** Unique per limiter: two relays in one process (or a pid reused after a restart) are two members. */
  readonly #id = `${os.hostname()}:${process.pid}:${crypto.randomBytes(4).toString('hex')}`;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #warnings: ThrottledLog;
  readonly #seen = new Map<string, Seen>();
  /** Budgets seeded since this process began counting alone. */
  readonly #seeded = new Set<string>();
  /** Heartbeat entries this process wrote lately (removed when it closes). */
  #written: string[] = [];
  #processes = 1;
  #shared = true;
  #askAgainAt = 0;
  /** When this process began counting alone (its first reservation since), on the limiter's clock. */
  #aloneSince: number | undefined;
  /** When this process first found Redis away (Date.now()), by a reservation or a heartbeat. */
  #downAt = 0;

  constructor(redis: Redis, prefix: string, deps: RedisLimiterDeps) {
    redis.defineCommand('trReserve', { lua: RESERVE });
    redis.defineCommand('trSettle', { lua: SETTLE });
    redis.defineCommand('trBackfill', { numberOfKeys: 1, lua: BACKFILL });
    redis.defineCommand('trHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT });
    this.#redis = redis as Scripted;
    this.#prefix = prefix;
    this.#deps = deps;
    this.#warnings = new ThrottledLog(deps.logger);
    this.#local = new MemoryLimiter(() => this.#localShare());
    this.#processes = rememberedRelays(deps.stateFile) ?? 1;
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
      const keys = budgets.flatMap((b) => [this.#key(b), `${this.#key(b)}:w`]);
      const windows = budgets.map((b) => (b.limits.messagesPerMinute !== undefined ? minuteWindow(b.limits.messagesPerMinute) : undefined));
      const member = `${now}-${Math.random().toString(36).slice(2, 10)}`;
      try {
        const args = budgets.flatMap((b, i) => [windows[i]?.count ?? 0, windows[i]?.windowMs ?? 0, b.limits.messagesPerDay ?? 0, b.limits.recipientsPerDay ?? 0]);
        const answer = (await this.#redis.trReserve(keys.length, ...keys, now, recipients, member, ...args)).map(Number);
        const [ok = 0, value = Number.NaN, resets = 0] = answer;
        await this.#up();
        if (resets > 0) {
          this.#deps.metrics.limitStoreErrors.inc();
          this.#warnings.warn({ event: 'limit-store-values-reset', budgets: budgets.map((b) => b.key) }, 'a budget in Redis held values that were not valid (not numbers, or out of range): it was started again');
        }
        const counts = ok === 1 ? answer.slice(3) : answer.slice(5);
        budgets.forEach((b, i) => {
          const w = windows[i];
          if (w) this.#seen.set(b.key, { count: counts[i] ?? w.count, limit: w.count, windowMs: w.windowMs, at: now });
        });
        if (ok !== 1) {
          const retryAt = value;
          // Never a time at or before now (the message would be asked about again at once, for ever) nor past a day.
          if (Number.isFinite(retryAt) && retryAt > now && retryAt <= now + DAY_MS + STEP_MS) {
            const blocking = budgets[(answer[3] ?? 0) - 1];
            const limit = LIMITS[(answer[4] ?? 0) - 1];
            return { ok: false, retryAt, ...(blocking ? { budget: blocking.key } : {}), ...(limit ? { limit } : {}) };
          }
          this.#deps.metrics.limitStoreErrors.inc();
          this.#warnings.warn({ event: 'limit-store-bad-answer', answer: String(value).slice(0, 40) }, 'Redis answered a time to wait that is not one; the message asks again later');
          return { ok: false, retryAt: now + BAD_ANSWER_BACKOFF_MS };
        }
        // What this process sent is known to it too: if it must count alone, its windows are right.
        const settleLocal = this.#local.record(budgets, recipients, now);
        let settled = false;
        return {
          ok: true,
          settle: (sent) => {
            if (settled) return;
            settled = true;
            settleLocal(sent);
            this.#redis.trSettle(keys.length, ...keys, value, recipients, sent, member).catch((err: Error) => this.#down(err));
          },
        };
      } catch (err) {
        this.#down(err as Error);
      }
    }
    // Alone since Redis was first found away (a heartbeat may have found it before any reservation did),
    // on the limiter's clock: what the fleet sent through Redis was sent before then.
    this.#aloneSince ??= now - Math.max(0, Date.now() - this.#downAt);
    for (const b of budgets) this.#seedAlone(b, this.#aloneSince);
    return this.#local.reserveNow(budgets, recipients, now);
  }

  close(): void {
    clearInterval(this.#heartbeat);
    if (this.#written.length > 0) this.#redis.zrem(`${this.#prefix}members`, ...this.#written).catch(() => undefined);
  }

  #key(b: Budget): string {
    return `${this.#prefix}limit:${b.key}`;
  }

  /** This process's part of every budget while it counts alone. */
  #localShare(): number {
    return this.#deps.settings().localShare ?? 1 / Math.max(1, this.#processes);
  }

  /**
   * Counting alone: what the fleet sent in this budget's minute window is taken as its count at this
   * process's last answer, plus as much as the fleet could have sent since, all as late as the moment it
   * began counting alone (what the others sent last is unknown). A budget it never asked Redis about: full.
   */
  #seedAlone(b: Budget, since: number): void {
    if (b.limits.messagesPerMinute === undefined || this.#seeded.has(b.key)) return;
    this.#seeded.add(b.key);
    const { count, windowMs } = minuteWindow(b.limits.messagesPerMinute);
    const seen = this.#seen.get(b.key);
    // Known lately: what the window held then, and the fleet's whole rate over the time since. Not known
    // lately (or never): the window may be full.
    const gap = seen ? since - seen.at : Number.POSITIVE_INFINITY;
    const fleet = seen && gap <= FRESH_ANSWER_MS ? Math.min(count, seen.count + Math.ceil((count * Math.max(0, gap)) / windowMs)) : count;
    this.#local.seed(b.key, fleet, since);
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
      rememberRelays(this.#deps.stateFile, this.#processes, now);
      // Redis answers: an idle relay counts in it again too (no reservation needed to notice).
      await this.#up();
    } catch (err) {
      // The count seen last stays: it is what a local share is cut by while Redis is away. Found away
      // here first, counting alone starts now, not at the next reservation (which may come much later).
      this.#down(err as Error);
    }
  }

  /** Redis answers: counting is shared again, and what this process sent alone is told to it first. */
  async #up(): Promise<void> {
    if (this.#shared) return;
    this.#shared = true;
    const since = this.#aloneSince ?? Number.POSITIVE_INFINITY;
    this.#aloneSince = undefined;
    this.#seeded.clear();
    for (const key of this.#local.keys()) {
      const sent = this.#local.sendsSince(key, since);
      const seen = this.#seen.get(key);
      if (sent.length === 0) continue;
      await this.#redis.trBackfill(`${this.#prefix}limit:${key}:w`, seen?.windowMs ?? 60_000, ...sent).catch(() => undefined);
    }
    this.#deps.logger.info({ event: 'limits-shared' }, 'Redis answers again: limits are counted in the shared store');
  }

  #down(err: Error): void {
    this.#askAgainAt = Date.now() + RETRY_AFTER_MS;
    this.#deps.metrics.limitStoreErrors.inc();
    if (!this.#shared) return;
    this.#shared = false;
    this.#downAt = Date.now();
    this.#aloneSince = undefined;
    this.#seeded.clear();
    const share = this.#localShare();
    this.#deps.logger.warn(
      { event: 'limits-local', reason: reasonOf(err), share, relaysSeen: this.#processes },
      'Redis does not answer: limits are counted in this process, at its share of each budget, until it does; mail keeps flowing',
    );
  }
}

/** The count of relays this process saw last, if it saw it lately (it may have been restarted since). */
function rememberedRelays(file: string | undefined): number | undefined {
  if (!file) return undefined;
  try {
    const { relays, at } = JSON.parse(fs.readFileSync(file, 'utf8')) as { relays: unknown; at: unknown };
    if (typeof relays !== 'number' || typeof at !== 'number' || !Number.isInteger(relays) || relays < 1 || Date.now() - at > REMEMBER_RELAYS_MS) return undefined;
    return Math.min(MAX_RELAYS, relays);
  } catch {
    return undefined;
  }
}

function rememberRelays(file: string | undefined, relays: number, at: number): void {
  if (!file) return;
  try {
    fs.writeFileSync(`${file}.new`, JSON.stringify({ relays, at }), { mode: PRIVATE_FILE });
    fs.renameSync(`${file}.new`, file);
  } catch {
    // A spool not writable now: the count is only a help after a restart.
  }
}

/** ioredis's words for the two usual cases, in the operator's: not connected, or no answer in time. */
function reasonOf(err: Error): string {
  if (/isn't writeable|Connection is closed/i.test(err.message)) return 'not connected to Redis';
  if (/timed out/i.test(err.message)) return 'Redis timed out: no answer within timeoutMilliseconds';
  return err.message;
}
