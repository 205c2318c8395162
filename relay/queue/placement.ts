// Where a due message goes (the scheduler's line for its upstream, or later), how many attempts that line
// may run at once, and how long mail over a budget waits before the limiter is asked again.
import type { Config } from '../../config/types.js';
import { Replies } from '../errors.js';
import { type Budget, budgetsFor, mailboxKey } from '../limits/budgets.js';
import { routeOf, upstreamForAttempt } from '../routing/route.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';
import { tenantOfQueued } from '../tenancy/queued-tenant.js';
import { type AttemptTarget, HELD } from './attempt.js';
import type { QueuedMessage } from './entry.js';
import type { Pacing } from './pacing.js';

/** How long queued mail of a platform tenant waits for the platform's answer before it is looked at again. */
const PLATFORM_WAIT_MS = 1000;
/**
 * How old the platform's answer about a tenant may be for the next look at its mail, once the cache has
 * let it go: the answer the last look asked for, a wait and a scheduler tick (1 s) later, with room.
 */
const PLATFORM_ANSWER_MS = 3 * PLATFORM_WAIT_MS;

/** Bounds on one hold of a message over its budget (see holdUntil). */
const MIN_HOLD_MS = 250;
const MAX_HOLD_MS = 60_000;

/**
 * Where a due message goes: the line of the upstream it is sent to (or of held mail), or later; `heldBy`
 * says why when a spent budget holds it.
 */
export type Placement =
  | { readonly kind: 'line'; readonly line: string; readonly target: AttemptTarget; readonly budgets: readonly Budget[] }
  | { readonly kind: 'later'; readonly at: number; readonly heldBy?: string };

/** A budget known to be spent until then: its mail waits without asking the limiter each time. */
export type BudgetHold = { readonly until: number; readonly reason: string };

/** Where a due message goes now: the line of the upstream routing picks for this attempt, or later. */
export function placementOf(entry: QueuedMessage, config: Config, now: number, platform: PlatformTenants | undefined, heldUntil: ReadonlyMap<string, BudgetHold>, pacing: Pacing): Placement {
  const found = tenantOfQueued(entry.tenant, config, platform, PLATFORM_ANSWER_MS);
  // Its tenant's record is being looked up: not sent through another upstream meanwhile.
  if (found.kind === 'wait') return { kind: 'later', at: now + PLATFORM_WAIT_MS };
  // Its tenant is gone: the attempt records why it is held (and expires it in time), and sends nothing.
  if (found.kind === 'gone') return { kind: 'line', line: HELD, target: { kind: 'hold', reply: Replies.tenantGone(found.id) }, budgets: [] };
  const tenant = found.kind === 'tenant' ? found.tenant : undefined;
  const upstream = upstreamForAttempt(routeOf(tenant, config), entry.firstTempFailureAt, now);
  const budgets = budgetsFor(tenant, upstream, now);
  // A budget spent moments ago: its mail waits its turn instead of being refused (smoothing).
  const held = budgets.map((b) => heldUntil.get(b.key)).reduce<BudgetHold | undefined>((a, h) => (h && (!a || h.until > a.until) ? h : a), undefined);
  if (held && held.until > now) return { kind: 'later', at: held.until, heldBy: held.reason };
  // Its provider asked the mailbox to slow down: its mail waits out the cool-down (pacing.ts).
  const paced = upstream.kind === 'smtp' ? pacing.hold(mailboxKey(upstream), now) : undefined;
  if (paced) return { kind: 'later', at: paced.until, heldBy: paced.reason };
  return { kind: 'line', line: upstream.name, target: { kind: 'deliver', upstream }, budgets };
}

/**
 * How long a message over a budget waits before asking again: until the limiter's answer, but never
 * less than a moment (an answer at or before now would be asked again at once, for ever) and never more
 * than a minute, so a hold that came from a bad value in a shared store ends soon after it is fixed.
 */
export function holdUntil(retryAt: number, now: number): number {
  const at = Number.isFinite(retryAt) ? retryAt : now + MAX_HOLD_MS;
  return Math.min(Math.max(at, now + MIN_HOLD_MS), now + MAX_HOLD_MS);
}

/** Attempts a line may run at once: the upstream's connections (fewer while paced); held mail takes no connection. */
export function slotsOf(target: AttemptTarget, pacing: Pacing, now: number): number {
  if (target.kind === 'hold') return Number.POSITIVE_INFINITY;
  const u = target.upstream;
  // A mailbox coming back from a provider's slow-down gets its connections back one at a time.
  return u.kind === 'smtp' ? pacing.slots(mailboxKey(u), u.maxConnections, now) : 1;
}
