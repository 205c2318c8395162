// The limiter in this process's memory: one budget per tenant and per upstream mailbox, forgotten on
// restart, and per process (three relays give a tenant three times its limit; see the README on a
// shared store). A worker among N counts 1/N of each budget: the kernel spreads connections evenly, and
// a provider's quota is better undershot (mail waits) than overshot (the mailbox is blocked for a day).
import type { Limits } from '../../config/types.js';
import type { Budget } from './budgets.js';
import { DAY_MS, type Limiter, type Reservation, shareOf, STEP_MS, STEPS } from './limiter.js';

interface Usage {
  tokens: number;
  refilledAt: number;
  /** Messages and recipients per 5-minute step of the last 24 hours, a ring indexed by step number. */
  readonly messages: Float64Array;
  readonly recipients: Float64Array;
  /** The step the ring was last moved to. */
  step: number;
  /** Reservations not settled yet: what they hold may come back. */
  unsettled: number;
}

/** A message refused while others are still being sent asks again this soon: what they do not send comes back. */
const RECHECK_MS = 5000;
const EPSILON = 1e-6;

export class MemoryLimiter implements Limiter {
  readonly #budgets = new Map<string, Usage>();

  /** share: this process's part of every budget (1 / workers), 1 when it is the only one. */
  constructor(private readonly share = 1) {}

  async reserve(budgets: readonly Budget[], recipients: number, now: number): Promise<Reservation> {
    return this.reserveNow(budgets, recipients, now);
  }

  /** The same, answered at once: the memory store needs no wait. */
  reserveNow(all: readonly Budget[], recipients: number, now: number): Reservation {
    const budgets = this.share < 1 ? all.map((b) => shareOf(b, this.share)) : all;
    let retryAt = now;
    for (const b of budgets) retryAt = Math.max(retryAt, this.#nextAllowedAt(b, recipients, now));
    if (retryAt > now) {
      const settling = budgets.some((b) => (this.#budgets.get(b.key)?.unsettled ?? 0) > 0);
      return { ok: false, retryAt: settling ? Math.min(retryAt, now + RECHECK_MS) : retryAt };
    }
    const taken = budgets.map((b) => ({ usage: this.#usage(b.key, b.limits, now), step: Math.floor(now / STEP_MS) }));
    let settled = false;
    for (const { usage, step } of taken) {
      usage.unsettled++;
      usage.tokens -= 1;
      usage.messages[step % STEPS] = (usage.messages[step % STEPS] ?? 0) + 1;
      usage.recipients[step % STEPS] = (usage.recipients[step % STEPS] ?? 0) + recipients;
    }
    return {
      ok: true,
      settle: (sent) => {
        if (settled) return;
        settled = true;
        for (const { usage, step } of taken) {
          usage.unsettled--;
          // What was sent counts, in its own step if that is still in the window: fewer recipients than
          // reserved give some back; more (pass-through reserves one at MAIL FROM) add the rest.
          if (usage.step - step >= STEPS) continue;
          usage.recipients[step % STEPS] = Math.max(0, (usage.recipients[step % STEPS] ?? 0) + sent - recipients);
          if (sent === 0) {
            usage.messages[step % STEPS] = Math.max(0, (usage.messages[step % STEPS] ?? 0) - 1);
            usage.tokens += 1;
          }
        }
      },
    };
  }

  #nextAllowedAt({ key, limits }: Budget, recipients: number, now: number): number {
    const u = this.#usage(key, limits, now);
    let at = now;
    // (A whole token, give or take the rounding of the refill arithmetic.)
    if (limits.messagesPerMinute !== undefined && u.tokens < 1 - EPSILON) at = Math.max(at, now + Math.ceil(((1 - u.tokens) * 60_000) / limits.messagesPerMinute - EPSILON));
    if (limits.messagesPerDay !== undefined) at = Math.max(at, whenFits(u.messages, u.step, limits.messagesPerDay, 1, now));
    if (limits.recipientsPerDay !== undefined) at = Math.max(at, whenFits(u.recipients, u.step, limits.recipientsPerDay, Math.min(recipients, limits.recipientsPerDay), now));
    return at;
  }

  /** The budget's usage, refilled and its window moved to `now`. */
  #usage(key: string, limits: Limits, now: number): Usage {
    const perMinute = limits.messagesPerMinute ?? Number.POSITIVE_INFINITY;
    const step = Math.floor(now / STEP_MS);
    let u = this.#budgets.get(key);
    if (!u) {
      u = { tokens: perMinute, refilledAt: now, messages: new Float64Array(STEPS), recipients: new Float64Array(STEPS), step, unsettled: 0 };
      this.#budgets.set(key, u);
    }
    u.tokens = Math.min(perMinute, u.tokens + ((now - u.refilledAt) * perMinute) / 60_000);
    u.refilledAt = Math.max(u.refilledAt, now);
    // Steps that fell out of the 24 hours since the last look are emptied.
    for (let s = u.step + 1; s <= step && s <= u.step + STEPS; s++) {
      u.messages[s % STEPS] = 0;
      u.recipients[s % STEPS] = 0;
    }
    u.step = Math.max(u.step, step);
    return u;
  }
}

/** When `add` more fits under `max` in the sliding window: now, or when enough old steps have left it. */
function whenFits(ring: Float64Array, step: number, max: number, add: number, now: number): number {
  let total = 0;
  for (const n of ring) total += n;
  if (total + add <= max) return now;
  // Walk from the oldest step in the window: each one leaves it 24 hours after it began.
  for (let i = 1; i <= STEPS; i++) {
    const s = step - STEPS + i;
    total -= ring[((s % STEPS) + STEPS) % STEPS] ?? 0;
    if (total + add <= max) return s * STEP_MS + DAY_MS;
  }
  return now + DAY_MS;
}
