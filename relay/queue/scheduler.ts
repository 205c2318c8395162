// When queued messages are attempted: each is due at its next-attempt time (due-times.ts); a due message
// waits in its upstream's line until that upstream has a free slot (`maxConnections`), so one dead or
// slow upstream only ever holds its own slots; a tenant over its rate waits its turn (smoothing, not
// refusal). The route of each attempt is asked of routing, from the snapshot in force then. What an
// attempt does: attempt.ts.
import type { Config } from '../../config/types.js';
import type { UpstreamAccess } from '../delivery/deliver.js';
import type { Outcomes } from '../observe/outcomes.js';
import type { Logger } from '../log.js';
import { ThrottledLog } from '../ops/throttled-log.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';
import type { Limiter } from '../limits/limiter.js';
import { mailboxKey } from '../limits/budgets.js';
import { attemptDelivery } from './attempt.js';
import { budgetInWords, Holds } from './holds.js';
import { DueTimes } from './due-times.js';
import { factsOf, pendingRecipients, type QueuedMessage } from './entry.js';
import { FreshBodies } from './fresh-bodies.js';
import { Pacing, type PacingFleet } from './pacing.js';
import type { SuppressionStore } from '../suppression/store.js';
import { Fifo } from './fifo.js';
import { type BudgetHold, holdUntil, type Placement, placementOf, slotsOf } from './placement.js';
import { logRecovered } from './recovery.js';
import { afterRequest, type QueueRequests } from './requests.js';
import type { Spool } from './spool.js';
import { TenantUsage, type Usage } from './tenant-usage.js';
import type { MessageBytes } from '../types.js';

export interface SchedulerDeps {
  readonly spool: Spool;
  readonly requests: QueueRequests;
  readonly config: () => Config;
  readonly upstreams: UpstreamAccess;
  readonly limiter: Limiter;
  readonly outcomes: Outcomes;
  readonly logger: Logger;
  /** The platform's tenants, for queued mail of a tenant the config files do not list. */
  readonly platform?: () => PlatformTenants | undefined;
  /** Addresses each tenant's mail does not go to (absent: none are). */
  readonly suppression?: SuppressionStore;
  /** Where the relays of a fleet share the cool-downs providers asked for (absent: this relay paces alone). */
  readonly pacingFleet?: PacingFleet;
  /** Milliseconds since the epoch; tests pass a fake clock. */
  readonly clock?: () => number;
  readonly random?: () => number;
}

/** An attempt that failed inside the relay (the spool, say) left the state as it was: tried again this soon. */
const AFTER_FAILED_ATTEMPT_MS = 1000;
/** How soon a message a request was changing when it fell due is looked at again. */
const CHANGING_RETRY_MS = 250;

export class Scheduler {
  readonly #deps: SchedulerDeps;
  readonly #warnings: ThrottledLog;
  readonly #clock: () => number;
  /** Every queued message this process knows, by id, as its state is on disk. */
  readonly #entries = new Map<string, QueuedMessage>();
  /** When each message not yet due is next due. */
  readonly #due = new DueTimes();
  /** Due messages waiting for a slot, in order, by upstream name. */
  readonly #lines = new Map<string, Fifo>();
  readonly #inLine = new Set<string>();
  readonly #inFlight = new Map<string, Promise<void>>();
  /** Messages a request (hold, delete, ...) is changing now: no attempt starts on them meanwhile. */
  readonly #changing = new Set<string>();
  /** The round of requests running now: the scan's and the console's take turns, never apply one twice. */
  #applying: Promise<void> = Promise.resolve();
  readonly #busyByUpstream = new Map<string, number>();
  /** Budgets known to be spent until then: their mail waits without asking the limiter each time. */
  readonly #heldUntil = new Map<string, BudgetHold>();
  /** Mailboxes their providers asked to slow down. */
  readonly #pacing = new Pacing();
  /** Messages held by a limit, and why: for queue list, the trace, events and the drain's last word. */
  readonly holds: Holds;
  /** Messages and bytes waiting, by tenant: what spool quotas count. */
  readonly #usage = new TenantUsage();
  #timers: NodeJS.Timeout[] = [];
  #stopped = false;
  #kicked = false;
  /** Bytes of messages accepted moments ago, for their first attempt (see add()). */
  readonly #bodies = new FreshBodies();

  constructor(deps: SchedulerDeps) {
    this.#deps = deps;
    this.holds = new Holds(deps.spool.layout.holdsFile);
    this.#warnings = new ThrottledLog(deps.logger);
    this.#clock = deps.clock ?? Date.now;
    deps.pacingFleet?.listen((mailbox, upstream, change) => {
      if (this.#pacing.adopt(mailbox, change, this.#clock())) this.#deps.outcomes.emit('paced', { upstream, tenant: null, ...change, heardBy: 'another relay' });
    });
  }

  /** A queued message's state as this process holds it (the mail console reads its own relay's queue here). */
  queued(id: string): QueuedMessage | undefined {
    return this.#entries.get(id);
  }

  /** Every message this process holds queued. */
  allQueued(): IterableIterator<QueuedMessage> {
    return this.#entries.values();
  }

  /** Takes what the spool holds (after a restart, everything in flight is simply due again) and starts the clock. */
  async start(options: { timers?: boolean } = {}): Promise<void> {
    const recovered = await this.#deps.spool.open();
    for (const e of recovered.entries) this.#schedule(e);
    logRecovered(recovered, this.#deps.logger);
    await this.applyRequests();
    if (options.timers ?? true) {
      const config = this.#deps.config();
      this.#timers = [
        setInterval(() => void this.runDue(), 1000),
        setInterval(
          () =>
            void this.applyRequests().then(
              () => this.runDue(),
              (err: unknown) => this.#warnings.warn({ event: 'queue-requests-failed', err: (err as Error).message }, 'queue requests failed; they are tried again at the next scan'),
            ),
          config.delivery.scanMs,
        ),
      ];
      void this.runDue();
    }
  }

  /**
   * A message just committed to the spool: delivered as soon as a slot is free. `bytes`, when given, are
   * the message as spooled: the first attempt sends them from memory instead of reading them back,
   * within a fixed budget.
   */
  add(entry: QueuedMessage, bytes?: MessageBytes): void {
    this.#schedule(entry);
    if (bytes) this.#bodies.keep(entry.id, bytes);
    this.#kick();
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Attempts running now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * Everything waiting for a retry is due now (a drain: the last chance this relay has to deliver it). In
   * memory only: the spool keeps each message's own next-attempt time.
   */
  hurry(): void {
    for (const [id, e] of this.#entries) if (!this.#inFlight.has(id) && !this.#inLine.has(id) && !e.onHold) this.#due.set(id, 0);
    this.#kick();
  }

  /** When the oldest message still queued was accepted (undefined when the queue is empty). */
  oldestCreatedAt(): number | undefined {
    let oldest: number | undefined;
    for (const e of this.#entries.values()) if (oldest === undefined || e.createdAt < oldest) oldest = e.createdAt;
    return oldest;
  }

  /** Starts every due attempt the concurrency limits allow; resolves when those attempts have ended. */
  async runDue(now = this.#clock()): Promise<void> {
    if (this.#stopped) return;
    const config = this.#deps.config();
    for (const id of this.#due.takeDue(now)) this.#enqueue(id, config, now);
    const started: Promise<void>[] = [];
    for (const [name, line] of this.#lines) {
      while (line.length > 0 && this.#inFlight.size < config.delivery.maxConcurrentDeliveries) {
        const id = line.peek();
        const entry = id !== undefined && this.#inLine.has(id) ? this.#entries.get(id) : undefined;
        if (!entry) {
          line.shift();
          continue;
        }
        if (this.#changing.has(entry.id)) {
          line.shift();
          this.#inLine.delete(entry.id);
          this.#due.set(entry.id, now + CHANGING_RETRY_MS);
          continue;
        }
        const where = this.#placeOf(entry, config, now);
        // Its route changed since it joined this line (a reload, a fallback), or it must wait after all.
        if (where.kind !== 'line' || where.line !== name) {
          line.shift();
          this.#inLine.delete(entry.id);
          if (where.kind === 'later') this.#due.set(entry.id, where.at);
          else this.#enqueue(entry.id, config, now);
          continue;
        }
        const busy = this.#busyByUpstream.get(name) ?? 0;
        // A dead or slow upstream only ever holds its own slots: other tenants' mail keeps moving.
        if (busy >= slotsOf(where.target, this.#pacing, now)) break;
        line.shift();
        this.#inLine.delete(entry.id);
        started.push(this.#start(entry, where, config, now));
      }
      if (line.length === 0) this.#lines.delete(name);
      if (this.#inFlight.size >= config.delivery.maxConcurrentDeliveries) break;
    }
    await Promise.all(started);
  }

  /** Applies the requests of `tenant-relay queue` and the mail console left in the spool (requests.ts). */
  applyRequests(): Promise<void> {
    const round = this.#applying.then(() => this.#applyPending());
    this.#applying = round.catch(() => {});
    return round;
  }

  async #applyPending(): Promise<void> {
    const { spool, requests } = this.#deps;
    for (const request of await requests.pending()) {
      if (this.#inFlight.has(request.id)) continue; // after the attempt ends, at the next scan
      this.#changing.add(request.id);
      try {
        const entry = await spool.read(request.id);
        const now = this.#clock();
        const next = entry && afterRequest(entry, request.kind, now);
        if (entry && next !== undefined) {
          if (next === 'gone') {
            await spool.remove(entry.id);
            this.#forget(entry.id);
          } else {
            await spool.update(next);
            this.#schedule(next);
          }
          this.#deps.outcomes.emit('handled', { message: factsOf(entry), at: now, recipients: pendingRecipients(entry), action: request.kind, by: request.by });
        }
        await requests.clear(request);
      } finally {
        this.#changing.delete(request.id);
      }
    }
    // A retried or released message goes now, not at the next tick.
    this.#kick();
  }

  /**
   * The console's: applies the requests left now, and one for a message being attempted as soon as that
   * attempt ends (waiting at most `waitMs`), so the person sees what they asked for.
   */
  async applyRequestsNow(waitMs = 5000): Promise<void> {
    const deadline = Date.now() + waitMs;
    // A request skipped because its message was being attempted is applied in the next round, whether
    // that attempt ended while this round looked (nothing to wait for) or is waited for now.
    for (let round = 0; round < 3; round++) {
      await this.applyRequests();
      const left = await this.#deps.requests.pending();
      if (left.length === 0 || Date.now() >= deadline) return;
      const busy = left.flatMap((r) => this.#inFlight.get(r.id) ?? []);
      if (busy.length === 0) continue;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(busy), new Promise((resolve) => (timer = setTimeout(resolve, deadline - Date.now())))]);
      clearTimeout(timer);
    }
  }

  /** Stops starting attempts; waits up to `graceMs` for those in flight (their state is on disk either way). */
  async stop(graceMs = 30_000): Promise<void> {
    this.#stopped = true;
    this.holds.flush();
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.allSettled([...this.#inFlight.values()]), timeout]);
    clearTimeout(timer);
  }

  /** The mail a tenant (null: no tenant) has waiting in this process's spool. */
  usageOf(tenant: string | null): Usage {
    return this.#usage.of(tenant);
  }

  #schedule(entry: QueuedMessage): void {
    if (!this.#entries.has(entry.id)) this.#usage.count(entry, 1);
    this.#entries.set(entry.id, entry);
    this.#inLine.delete(entry.id);
    // Held by hand: on disk and counted, never due until released.
    if (entry.onHold) this.#due.delete(entry.id);
    else this.#due.set(entry.id, entry.nextAttemptAt);
  }

  #forget(id: string): void {
    const entry = this.#entries.get(id);
    if (entry) this.#usage.count(entry, -1);
    this.holds.clear(id);
    this.#entries.delete(id);
    this.#due.delete(id);
    this.#inLine.delete(id);
    this.#bodies.take(id);
  }

  /** A due message joins its upstream's line, or is due again later (its tenant over its rate, or unknown yet). */
  #enqueue(id: string, config: Config, now: number): void {
    const entry = this.#entries.get(id);
    if (!entry || this.#inFlight.has(id)) return;
    // A request is changing it: due again once that is written (the request's own state, or as it was).
    if (this.#changing.has(id)) return this.#due.set(id, now + CHANGING_RETRY_MS);
    const where = this.#placeOf(entry, config, now);
    if (where.kind === 'later') return this.#due.set(id, where.at);
    let line = this.#lines.get(where.line);
    if (!line) {
      line = new Fifo();
      this.#lines.set(where.line, line);
    }
    line.push(id);
    this.#inLine.add(id);
  }

  /** Where a due message goes now (placement.ts); a message a spent budget holds is recorded as held. */
  #placeOf(entry: QueuedMessage, config: Config, now: number): Placement {
    const where = placementOf(entry, config, now, this.#deps.platform?.(), this.#heldUntil, this.#pacing);
    if (where.kind === 'later' && where.heldBy !== undefined) this.#hold(entry, where.heldBy, where.at, now);
    return where;
  }

  /** Records why a message waits; it is news when the hold is new, its reason changed, or an hour on. */
  #hold(entry: QueuedMessage, reason: string, until: number, now: number): void {
    const news = this.holds.set(entry.id, reason, until, now);
    this.#deps.outcomes.emit('held', { message: factsOf(entry), at: now, recipients: pendingRecipients(entry), reason, until, news });
  }

  #start(entry: QueuedMessage, { line, target, budgets }: Extract<Placement, { kind: 'line' }>, config: Config, now: number): Promise<void> {
    const { id } = entry;
    // Claimed before any await: two overlapping rounds must never start the same message twice.
    this.#busyByUpstream.set(line, (this.#busyByUpstream.get(line) ?? 0) + 1);
    const deps = { ...this.#deps, clock: this.#clock };
    const attempt = (async () => {
      const reserved = await this.#deps.limiter.reserve(budgets, pendingRecipients(entry).length, now);
      if (!reserved.ok) {
        const until = holdUntil(reserved.retryAt, now);
        const reason = reserved.budget ? `${budgetInWords(reserved.budget)} is at its ${reserved.limit ?? 'sending'} limit` : 'a sending limit';
        for (const b of budgets) if ((this.#heldUntil.get(b.key)?.until ?? 0) < until) this.#heldUntil.set(b.key, { until, reason });
        this.#hold(entry, reason, until, now);
        this.#due.set(id, until);
        return;
      }
      this.holds.clear(id);
      // Only what the upstream took counts against the budgets; an attempt that failed outright took nothing.
      const outcome = await attemptDelivery(entry, target, this.#bodies.take(id), config, now, deps).catch((err: unknown) => {
        reserved.settle(0);
        throw err;
      });
      reserved.settle(outcome.sent);
      if (outcome.signal && target.kind === 'deliver' && target.upstream.kind === 'smtp') {
        const change = this.#pacing.signal(mailboxKey(target.upstream), outcome.signal.kind, outcome.signal.reply, now);
        if (change) {
          this.#deps.outcomes.emit('paced', { upstream: target.upstream.name, tenant: entry.tenant ?? null, ...change, heardBy: 'this relay' });
          this.#deps.pacingFleet?.tell(mailboxKey(target.upstream), target.upstream.name, change);
        }
      }
      // The state in memory is the spool's: every change to it goes through this scheduler.
      if (outcome.retry) this.#schedule(outcome.retry);
      else this.#forget(id);
      if (outcome.dsn) this.add(outcome.dsn.entry, outcome.dsn.bytes);
    })()
      .catch((err: unknown) => {
        // Once a minute at most (a full disk fails every attempt): the count says how many since.
        this.#warnings.warn({ event: 'queue-attempt-failed', id, err: (err as Error).message }, 'attempt failed inside the relay; it will be retried');
        // Its state on disk is as before the attempt: it is due again.
        if (this.#entries.has(id)) this.#due.set(id, now + AFTER_FAILED_ATTEMPT_MS);
      })
      .finally(() => {
        this.#inFlight.delete(id);
        this.#busyByUpstream.set(line, (this.#busyByUpstream.get(line) ?? 1) - 1);
        // The freed slot is for what waits in a line; what becomes due later, the clock's round takes.
        // With nothing waiting (one message at a time), the round would only look at empty lines.
        if (this.#inLine.size > 0) this.#kick();
      });
    this.#inFlight.set(id, attempt);
    return attempt;
  }

  /** One round soon: many messages accepted or finished in the same turn share it. */
  #kick(): void {
    if (this.#kicked || this.#timers.length === 0 || this.#stopped) return;
    this.#kicked = true;
    setImmediate(() => {
      this.#kicked = false;
      void this.runDue();
    });
  }
}
