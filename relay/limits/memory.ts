// The limiter in this process's memory: one budget per tenant and per upstream mailbox, forgotten on
// restart, and per process (three relays give a tenant three times its limit; see the README on a
// shared store). A worker among N counts 1/N of each budget: the kernel spreads connections evenly, and
// a provider's quota is better undershot (mail waits) than overshot (the mailbox is blocked for a day).
// It is also what a relay counts on while Redis is away (redis.ts): then its share of each per-minute
// window is what the fleet left of it, as far as it can know (seed()).
import type { Budget } from './budgets.js';
import { DAY_MS, type LimitName, type Limiter, minuteWindow, type Reservation, shareOf, STEP_MS, STEPS } from './limiter.js';

interface Usage {
  /** When this process's messages in the current minute window were reserved (oldest first). */
  readonly sends: number[];
  /** Messages others sent in the window, as far as this process knows: `count` of them, all as late as `at`. */
  external?: { readonly count: number; readonly at: number };
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
/** The longest minute window kept (a limit of one message in six hours), and the most sends remembered. */
const MAX_WINDOW_MS = 6 * 3_600_000;
const MAX_SENDS = 100_000;

export class MemoryLimiter implements Limiter {
  readonly #budgets = new Map<string, Usage>();
  readonly #share: () => number;

  /** share: this process's part of every budget (1 / workers, or a relay's part while Redis is away), 1 when alone. */
  constructor(share: number | (() => number) = 1) {
    this.#share = typeof share === 'number' ? () => share : share;
  }

  async reserve(budgets: readonly Budget[], recipients: number, now: number): Promise<Reservation> {
    return this.reserveNow(budgets, recipients, now);
  }

  /** The same, answered at once: the memory store needs no wait. */
  reserveNow(budgets: readonly Budget[], recipients: number, now: number): Reservation {
    const share = this.#share();
    let blocked: { at: number; budget: string; limit: LimitName } | undefined;
    for (const b of budgets) {
      const held = this.#nextAllowedAt(b, share, recipients, now);
      if (held && (!blocked || held.at > blocked.at)) blocked = { ...held, budget: b.key };
    }
    if (blocked) {
      const settling = budgets.some((b) => (this.#budgets.get(b.key)?.unsettled ?? 0) > 0);
      return { ok: false, retryAt: settling ? Math.min(blocked.at, now + RECHECK_MS) : blocked.at, budget: blocked.budget, limit: blocked.limit };
    }
    const usages = budgets.map((b) => ({ usage: this.#usage(b.key, now), step: Math.floor(now / STEP_MS) }));
    this.#take(usages.map((x) => x.usage), recipients, now);
    let settled = false;
    return {
      ok: true,
      settle: (sent) => {
        if (settled) return;
        settled = true;
        for (const { usage, step } of usages) this.#settle(usage, step, now, recipients, sent);
      },
    };
  }

  /**
   * Counts a message another store already took (Redis answered): what this process sent stays known, so
   * its windows are right if it has to count alone. Returns the settlement, as reserve() would.
   */
  record(budgets: readonly Budget[], recipients: number, now: number): (sent: number) => void {
    const usages = budgets.map((b) => ({ usage: this.#usage(b.key, now), step: Math.floor(now / STEP_MS) }));
    this.#take(usages.map((x) => x.usage), recipients, now);
    let settled = false;
    return (sent) => {
      if (settled) return;
      settled = true;
      for (const { usage, step } of usages) this.#settle(usage, step, now, recipients, sent);
    };
  }

  /** What the rest of the fleet sent in this budget's minute window, as far as this process knows. */
  seed(key: string, count: number, at: number): void {
    const usage = this.#usage(key, at);
    usage.external = { count, at };
    // From here on only what this process sends counts beside it.
    usage.sends.length = 0;
  }

  /** This process's own sends in a budget's minute window since `since`: what a shared store is told later. */
  sendsSince(key: string, since: number): readonly number[] {
    return (this.#budgets.get(key)?.sends ?? []).filter((t) => t > since);
  }

  /** The budget keys this process knows. */
  keys(): Iterable<string> {
    return this.#budgets.keys();
  }

  #take(usages: readonly Usage[], recipients: number, now: number): void {
    const step = Math.floor(now / STEP_MS);
    for (const usage of usages) {
      usage.unsettled++;
      usage.sends.push(now);
      // Recorded while another store counts, never checked here: bounded all the same.
      while (usage.sends.length > MAX_SENDS || (usage.sends[0] ?? now) < now - MAX_WINDOW_MS) usage.sends.shift();
      usage.messages[step % STEPS] = (usage.messages[step % STEPS] ?? 0) + 1;
      usage.recipients[step % STEPS] = (usage.recipients[step % STEPS] ?? 0) + recipients;
    }
  }

  #settle(usage: Usage, step: number, at: number, recipients: number, sent: number): void {
    usage.unsettled--;
    // What was sent counts, in its own step if that is still in the window: fewer recipients than
    // reserved give some back; more (pass-through reserves one at MAIL FROM) add the rest.
    if (sent === 0) {
      const i = usage.sends.lastIndexOf(at);
      if (i !== -1) usage.sends.splice(i, 1);
    }
    if (usage.step - step >= STEPS) return;
    usage.recipients[step % STEPS] = Math.max(0, (usage.recipients[step % STEPS] ?? 0) + sent - recipients);
    if (sent === 0) usage.messages[step % STEPS] = Math.max(0, (usage.messages[step % STEPS] ?? 0) - 1);
  }

  /** When this budget lets one more message of `recipients` go (and which limit says so), or undefined: now. */
  #nextAllowedAt(b: Budget, share: number, recipients: number, now: number): { at: number; limit: LimitName } | undefined {
    const u = this.#usage(b.key, now);
    const cut = shareOf(b, share).limits;
    let held: { at: number; limit: LimitName } | undefined;
    const later = (at: number, limit: LimitName) => {
      if (at > now && (!held || at > held.at)) held = { at, limit };
    };
    if (b.limits.messagesPerMinute !== undefined) later(this.#minuteAllowsAt(u, b.limits.messagesPerMinute, share, now), 'messagesPerMinute');
    if (cut.messagesPerDay !== undefined) later(whenFits(u.messages, u.step, cut.messagesPerDay, 1, now), 'messagesPerDay');
    if (cut.recipientsPerDay !== undefined) later(whenFits(u.recipients, u.step, cut.recipientsPerDay, Math.min(recipients, cut.recipientsPerDay), now), 'recipientsPerDay');
    return held;
  }

  /**
   * The minute window: this process's own sends, plus its share of what others sent (seed), within its
   * share of the limit. Alone (share 1, nothing seeded) that is "fewer than the limit in the window".
   */
  #minuteAllowsAt(u: Usage, perMinute: number, share: number, now: number): number {
    const { count, windowMs: window } = minuteWindow(perMinute);
    const external = u.external && u.external.at > now - window ? u.external : undefined;
    // A share too small for one message in the window (a worker among many, a relay of a large fleet at
    // a low limit) sends one in a window stretched to match: on average the fleet keeps to its limit.
    const exact = share * count;
    const windowMs = !external && exact < 1 ? Math.ceil(window / Math.max(exact, 1e-6)) : window;
    while (u.sends.length > 0 && (u.sends[0] ?? 0) <= now - windowMs) u.sends.shift();
    // After a seed, only what the fleet left.
    const allowed = external ? Math.floor(share * (count - external.count) + 1e-9) : Math.max(1, Math.floor(exact + 1e-9));
    if (u.sends.length < allowed) return now;
    // Room comes back when an own message leaves the window, or when the others' do (as late as they were).
    const frees: number[] = [];
    if (allowed > 0) frees.push((u.sends[u.sends.length - allowed] ?? now) + windowMs);
    if (external) frees.push(external.at + window);
    return Math.min(...frees);
  }

  /** The budget's usage, its day window moved to `now`. */
  #usage(key: string, now: number): Usage {
    const step = Math.floor(now / STEP_MS);
    let u = this.#budgets.get(key);
    if (!u) {
      u = { sends: [], messages: new Float64Array(STEPS), recipients: new Float64Array(STEPS), step, unsettled: 0 };
      this.#budgets.set(key, u);
    }
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
