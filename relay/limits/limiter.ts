// Sending limits, answered as *when* the next message may go, so the queue holds mail until then
// (smoothing, no refusals) and pass-through can say how long to wait. A message is reserved before it is
// sent and settled after: recipients the upstream did not take are given back, so only what was sent
// counts. Windows: messages per minute as a sliding window (no 60 seconds ever hold more than the limit,
// the way Microsoft 365 counts its 30 a minute: a minute's worth may go at once, then the next as the
// oldest leave the window), and a sliding 24 hours, in 5-minute steps, for messages and recipients per
// day (how Microsoft 365 counts its 10,000 recipients).
import type { Limits } from '../../config/types.js';
import type { Budget } from './budgets.js';

/** Which limit of a budget holds a message back. */
export type LimitName = 'messagesPerMinute' | 'messagesPerDay' | 'recipientsPerDay';

export type Reservation =
  | { readonly ok: true; readonly settle: (sentRecipients: number) => void }
  /** `budget` and `limit`: what holds it (absent when the store could not say). */
  | { readonly ok: false; readonly retryAt: number; readonly budget?: string; readonly limit?: LimitName };

/**
 * A per-minute limit as a sliding window: at most `count` messages in any `windowMs`. A limit under one a
 * minute is one message per longer window (0.5: one in any two minutes); a fraction above one is cut
 * (2.5 a minute: 2 in any minute), so the window never holds more than the limit.
 */
export function minuteWindow(perMinute: number): { readonly count: number; readonly windowMs: number } {
  return perMinute >= 1 ? { count: Math.floor(perMinute), windowMs: 60_000 } : { count: 1, windowMs: Math.ceil(60_000 / perMinute) };
}

/** A store of budgets: this process's memory (memory.ts); shared stores keep the same contract. */
export interface Limiter {
  /** Takes one message of `recipients` from every budget, or says when it could go. */
  reserve(budgets: readonly Budget[], recipients: number, now: number): Promise<Reservation>;
}

export const DAY_MS = 24 * 3_600_000;
export const STEP_MS = 5 * 60_000;
export const STEPS = DAY_MS / STEP_MS;

export const limited = (l: Limits) => l.messagesPerMinute !== undefined || l.messagesPerDay !== undefined || l.recipientsPerDay !== undefined;

/**
 * A process's part of a budget when it counts alone: a worker among N without a shared store, or a relay
 * while Redis is away. Never below one message (a day limit of 5 over 8 workers still lets each send).
 */
export function shareOf(b: Budget, share: number): Budget {
  if (share >= 1) return b;
  const cut = (n: number) => Math.max(share * n, 1);
  const limits: Limits = {
    ...(b.limits.messagesPerMinute !== undefined ? { messagesPerMinute: cut(b.limits.messagesPerMinute) } : {}),
    ...(b.limits.messagesPerDay !== undefined ? { messagesPerDay: Math.floor(cut(b.limits.messagesPerDay)) } : {}),
    ...(b.limits.recipientsPerDay !== undefined ? { recipientsPerDay: Math.floor(cut(b.limits.recipientsPerDay)) } : {}),
  };
  return { key: b.key, limits };
}
