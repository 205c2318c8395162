// How the scheduler paces an upstream mailbox whose provider asked it to slow down (a throttle reply) or
// said its quota is used up (delivery/provider-replies.ts). The mailbox's mail waits out a cool-down,
// held, never refused or bounced; the cool-down doubles while the replies continue. After it, the
// mailbox gets one connection, and one more for each minute without such a reply (additive increase),
// up to its maxConnections; ten quiet minutes at full pace and it is forgotten. In a fleet, each relay
// takes the cool-downs the others began (adopt). Pure, apart from the clock it is given.
import type { ProviderSignal } from '../delivery/provider-replies.js';

// Never longer than ten minutes: mail is back within ten minutes of the provider taking it again. A
// quota frees over its window (Microsoft's sliding 24 hours) bit by bit, so it is looked at again every
// ten minutes; in a fleet that is one refused attempt per ten minutes for all the relays (the cool-down is
// shared), which no provider counts against the mailbox.
const COOL_DOWN_MS: Readonly<Record<ProviderSignal, { readonly first: number; readonly max: number }>> = {
  quota: { first: 5 * 60_000, max: 10 * 60_000 },
  // A rate limit eases within minutes.
  throttle: { first: 60_000, max: 8 * 60_000 },
};
/** During recovery, one more connection per this much time without a signal. */
const SLOT_EVERY_MS = 60_000;
/** At full pace this long without a signal, and the mailbox's history is forgotten. */
const FORGET_AFTER_MS = 10 * 60_000;
/** Past any mailbox's climb back (maxConnections is at most 100): forgotten whatever its size. */
const MAX_SLOTS_MS = 100 * SLOT_EVERY_MS;

interface Paced {
  signal: ProviderSignal;
  /** Cool-downs in a row: each doubles the last. */
  level: number;
  until: number;
  reason: string;
}

export interface PaceChange {
  readonly signal: ProviderSignal;
  readonly until: number;
  readonly level: number;
  readonly reason: string;
}

/** Where the relays of a fleet tell each other the cool-downs they began (runtime/shared-pacing.ts). */
export interface PacingFleet {
  /** Tells the other relays of a cool-down this one began for an upstream's mailbox. */
  tell(mailbox: string, upstream: string, change: PaceChange): void;
  /** Calls `adopt` with each cool-down another relay began, as it is learned. */
  listen(adopt: (mailbox: string, upstream: string, change: PaceChange) => void): void;
}

export class Pacing {
  readonly #byMailbox = new Map<string, Paced>();

  /** The provider signalled for this mailbox: its next cool-down, or undefined when one is running already. */
  signal(mailbox: string, signal: ProviderSignal, reply: string, now: number): PaceChange | undefined {
    this.#forgetQuiet(now);
    const before = this.#byMailbox.get(mailbox);
    // A signal during a cool-down (attempts that were under way) does not lengthen it.
    if (before && before.until > now) return undefined;
    const level = before ? before.level + 1 : 0;
    const { first, max } = COOL_DOWN_MS[signal];
    const until = now + Math.min(max, first * 2 ** level);
    const paced = { signal, level, until, reason: `the provider ${signal === 'quota' ? "says the mailbox's quota is used up" : 'asks the relay to slow down'} (${reply.slice(0, 200)}); paced until ${new Date(until).toISOString()}` };
    this.#byMailbox.set(mailbox, paced);
    return { ...paced };
  }

  /**
   * A cool-down another relay began for this mailbox (limits/shared-pacing.ts): taken when it ends later
   * than this relay's own, so every relay of the fleet waits it out and the next signal doubles it.
   */
  adopt(mailbox: string, change: PaceChange, now: number): boolean {
    this.#forgetQuiet(now);
    const mine = this.#byMailbox.get(mailbox);
    if (change.until <= now || (mine && mine.until >= change.until)) return false;
    this.#byMailbox.set(mailbox, { signal: change.signal, level: Math.max(change.level, mine?.level ?? 0), until: change.until, reason: change.reason });
    return true;
  }

  /** The mailbox's cool-down, while it lasts. */
  hold(mailbox: string, now: number): { readonly until: number; readonly reason: string } | undefined {
    const paced = this.#byMailbox.get(mailbox);
    return paced && paced.until > now ? { until: paced.until, reason: paced.reason } : undefined;
  }

  /** Attempts the mailbox may run at once, at most `max` (its maxConnections). */
  slots(mailbox: string, max: number, now: number): number {
    const paced = this.#byMailbox.get(mailbox);
    if (!paced) return max;
    if (paced.until > now) return 0;
    const grown = 1 + Math.floor((now - paced.until) / SLOT_EVERY_MS);
    if (grown >= max && now - paced.until - (max - 1) * SLOT_EVERY_MS >= FORGET_AFTER_MS) {
      this.#byMailbox.delete(mailbox);
      return max;
    }
    return Math.min(max, grown);
  }

  /**
   * Mailboxes quiet long enough to be back at any pace: slots() forgets those that still send, this the
   * ones no mail went to since (a tenant gone, a mailbox changed), so the map does not only grow.
   */
  #forgetQuiet(now: number): void {
    for (const [mailbox, paced] of this.#byMailbox) if (now - paced.until >= MAX_SLOTS_MS + FORGET_AFTER_MS) this.#byMailbox.delete(mailbox);
  }

  /** Mailboxes being paced now (a cool-down, or back to speed step by step). */
  get size(): number {
    return this.#byMailbox.size;
  }
}
