// What a provider's webhook tells of a message after its 250 (a bounce, a complaint, a confirmed
// delivery), once its signature is checked: the same shape whichever provider sent it.
export const PROVIDER_EVENT_TYPES = ['bounced', 'complained', 'delivered'] as const;
export type ProviderEventType = (typeof PROVIDER_EVENT_TYPES)[number];

export interface ProviderEvent {
  readonly provider: string;
  readonly type: ProviderEventType;
  /** Lower case. */
  readonly recipient: string;
  /** The message's Message-ID as the provider echoed it, with its angle brackets. */
  readonly messageId?: string;
  /** The relay's own queue id, from a link the relay signed and the provider echoed (Postmark's metadata). */
  readonly queueId?: string;
  /** What the provider said (its code and text), cleaned and bounded by the caller. */
  readonly reason: string;
  /** Milliseconds since the epoch. */
  readonly at: number;
}

/** A request checked: its events (and how many it told of that the relay does not act on), or why it is refused. */
export type Verified = { readonly ok: true; readonly events: readonly ProviderEvent[]; readonly ignored: number } | { readonly ok: false; readonly why: string };

/** At most this far from now, a signed timestamp is taken (older: a replay). */
export const MAX_SKEW_MS = 15 * 60_000;

/** A Message-ID as the trace keeps it: with its angle brackets. */
export const bracketed = (id: string | undefined) => (id === undefined || id === '' ? undefined : id.startsWith('<') ? id : `<${id}>`);

const MAX_SEEN = 100_000;

/** What a verifier asks of the replay memory. */
export interface ReplayGuard {
  /** True the first time `token` is seen. */
  fresh(token: string, now: number): boolean;
}

/** Tokens seen lately, so one signed request cannot be replayed within the skew (bounded). */
export class SeenTokens implements ReplayGuard {
  readonly #seen = new Map<string, number>();

  /** True the first time `token` is seen (and remembered until it is too old to be taken anyway). */
  fresh(token: string, now: number): boolean {
    if (this.#seen.has(token)) return false;
    // Oldest first (a Map keeps insertion order): drop what is too old to be taken anyway, or past the
    // bound, and stop at the first that is neither.
    for (const [t, at] of this.#seen) {
      if (now - at <= 2 * MAX_SKEW_MS && this.#seen.size < MAX_SEEN) break;
      this.#seen.delete(t);
    }
    this.#seen.set(token, now);
    return true;
  }

  /** A request that could not be taken (503): its provider sends it again, and that must not be a replay. */
  forget(token: string): void {
    this.#seen.delete(token);
  }
}

/** The tokens one request marked as seen, so they can be forgotten if it cannot be taken. */
export function guardFor(seen: SeenTokens): ReplayGuard & { undo(): void } {
  const marked: string[] = [];
  return {
    fresh(token, now) {
      const fresh = seen.fresh(token, now);
      if (fresh) marked.push(token);
      return fresh;
    },
    undo: () => marked.forEach((t) => seen.forget(t)),
  };
}
