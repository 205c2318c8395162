// Sending limits, answered as *when* the next message may go, so the queue holds mail until then
// (smoothing, no refusals) and pass-through can say how long to wait. A message is reserved before it is
// sent and settled after: recipients the upstream did not take are given back, so only what was sent
// counts. Windows: a token bucket for messages per minute (a minute's worth may go at once), and a sliding
// 24 hours, in 5-minute steps, for messages and recipients per day (how Microsoft 365 counts).
import type { Limits } from '../../config/types.js';
import type { Budget } from './budgets.js';

export type Reservation = { readonly ok: true; readonly settle: (sentRecipients: number) => void } | { readonly ok: false; readonly retryAt: number };

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
