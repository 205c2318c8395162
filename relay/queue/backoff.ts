// How long to wait before attempt n+1 (n >= 1 failed attempts so far): the minimum, doubling up to the
// cap, moved by up to ±jitter so that a batch deferred together does not retry in lockstep.
import type { RetryPolicy } from '../../config/types.js';

export function retryDelay(failedAttempts: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.minMs * 2 ** Math.max(0, failedAttempts - 1));
  const spread = base * policy.jitter * (random() * 2 - 1);
  return Math.max(1000, Math.round(base + spread));
}
