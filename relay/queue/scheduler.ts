// Delivers queued messages: attempts when due, per-upstream concurrency so that one dead upstream cannot
// take the slots of the others, per-recipient outcomes written to the spool before anything else, retries
// with backoff, expiry, smarthost fallback, and a DSN for what failed for good.
import type { Config, Tenant, Upstream } from '../../config/types.js';
import { type DeliveryEdge, deliver } from '../delivery/deliver.js';
import { formatReply } from '../errors.js';
import type { Logger } from '../ops/log.js';
import type { RelayMetrics } from '../ops/metrics.js';
import type { SendTests } from '../ops/send-tests.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';
import type { RecipientOutcome } from '../types.js';
import { retryDelay } from './backoff.js';
import { buildDsn } from './dsn.js';
import type { TenantRates } from './rates.js';
import { pendingRecipients, type QueuedMessage, type QueuedRecipient } from './entry.js';
import type { Spool } from './spool.js';

export interface SchedulerDeps {
  readonly spool: Spool;
  readonly config: () => Config;
  readonly edge: DeliveryEdge;
  readonly rates: TenantRates;
  readonly metrics: RelayMetrics;
  readonly sendTests: SendTests;
  readonly logger: Logger;
  /** The platform's tenants, for queued mail of a tenant the config files do not list. */
  readonly platform?: () => PlatformTenants | undefined;
  /** Milliseconds since the epoch; tests pass a fake clock. */
  readonly clock?: () => number;
  readonly random?: () => number;
}

/** Memory for messages awaiting their first attempt; past it, attempts read the spool file. */
const IN_MEMORY_BUDGET_BYTES = 32 * 1024 * 1024;

/** How long queued mail of a platform tenant waits for the platform's answer before it is looked at again. */
const PLATFORM_WAIT_MS = 1000;

export class Scheduler {
  readonly #deps: SchedulerDeps;
  readonly #clock: () => number;
  /** Every queued message this process knows, by id: when it is due and what picks its upstream. */
  readonly #due = new Map<string, Due>();
  readonly #inFlight = new Map<string, Promise<void>>();
  readonly #busyByUpstream = new Map<string, number>();
  #timers: NodeJS.Timeout[] = [];
  #stopped = false;
  #kicked = false;
  /** Bytes of messages accepted moments ago, for their first attempt (see add()). */
  readonly #bodies = new Map<string, Buffer>();
  #bodyBytes = 0;

  constructor(deps: SchedulerDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? Date.now;
  }

  /** Reads the spool (after a restart: everything in flight is simply due again) and starts the clock. */
  async start(options: { timers?: boolean } = {}): Promise<void> {
    const { entries, corrupt, discarded } = await this.#deps.spool.scan();
    // Expected after a crash (a write cut short was never acknowledged); without one, it means damage on disk.
    for (const d of discarded) this.#deps.logger.warn({ event: 'journal-tail-discarded', segment: d.path, bytes: d.bytes }, 'a journal segment ends in a torn or damaged record; the bytes from there on were ignored');
    for (const c of corrupt) this.#deps.logger.error({ event: 'queue-corrupt', id: c.id, reason: c.reason }, 'queue entry moved to corrupt/');
    for (const e of entries) this.#due.set(e.id, dueOf(e));
    this.#deps.logger.info({ event: 'queue-loaded', entries: entries.length, corrupt: corrupt.length });
    await this.applyRequests();
    if (options.timers ?? true) {
      const config = this.#deps.config();
      this.#timers = [
        setInterval(() => void this.runDue(), 1000),
        setInterval(() => void this.applyRequests().then(() => this.runDue()), config.delivery.scanMs),
      ];
      void this.runDue();
    }
  }

  /**
   * A message just committed to the spool: delivered as soon as a slot is free. `bytes`, when given, are
   * the message as spooled: the first attempt sends them from memory instead of reading them back,
   * within a fixed budget.
   */
  add(entry: QueuedMessage, bytes?: Buffer): void {
    this.#due.set(entry.id, dueOf(entry));
    if (bytes && this.#bodyBytes + bytes.length <= IN_MEMORY_BUDGET_BYTES) {
      this.#bodies.set(entry.id, bytes);
      this.#bodyBytes += bytes.length;
    }
    this.#kick();
  }

  #takeBody(id: string): Buffer | undefined {
    const bytes = this.#bodies.get(id);
    if (bytes) {
      this.#bodies.delete(id);
      this.#bodyBytes -= bytes.length;
    }
    return bytes;
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

  get size(): number {
    return this.#due.size;
  }

  /** When the oldest message still queued was accepted (undefined when the queue is empty). */
  oldestCreatedAt(): number | undefined {
    let oldest: number | undefined;
    for (const d of this.#due.values()) if (oldest === undefined || d.entry.createdAt < oldest) oldest = d.entry.createdAt;
    return oldest;
  }

  /** Starts every due attempt the concurrency limits allow; resolves when those attempts have ended. */
  async runDue(now = this.#clock()): Promise<void> {
    if (this.#stopped) return;
    const config = this.#deps.config();
    const started: Promise<void>[] = [];
    const due = [...this.#due].filter(([id, d]) => d.at <= now && !this.#inFlight.has(id)).sort((a, b) => a[1].at - b[1].at);
    for (const [id, d] of due) {
      if (this.#inFlight.size >= config.delivery.maxConcurrentDeliveries) break;
      const tenant = this.#tenantOf(d, config);
      if (tenant === 'wait') {
        // Its lookup has started; the message is not sent through another upstream meanwhile.
        this.#due.set(id, { ...d, at: now + PLATFORM_WAIT_MS });
        continue;
      }
      const upstream = this.#routeFor(d, tenant, config, now);
      const busy = this.#busyByUpstream.get(upstream.name) ?? 0;
      // A dead or slow upstream only ever holds its own slots: other tenants' mail keeps moving.
      if (busy >= slotsOf(upstream)) continue;
      // Over its rate, a tenant's mail waits its turn instead of being refused (smoothing).
      const allowedAt = this.#deps.rates.nextAllowedAt(tenant, now);
      if (allowedAt > now) {
        this.#due.set(id, { ...d, at: allowedAt });
        continue;
      }
      this.#deps.rates.take(tenant, now);
      // Claimed before any await: two overlapping rounds must never start the same message twice.
      this.#busyByUpstream.set(upstream.name, busy + 1);
      // The state in memory is the spool's: every change to it goes through this scheduler.
      const attempt = this.#attempt(d.entry, upstream, config, now)
        .catch((err: unknown) => this.#deps.logger.error({ event: 'queue-attempt-failed', id, err }, 'attempt failed; it will be retried'))
        .finally(() => {
          this.#inFlight.delete(id);
          this.#busyByUpstream.set(upstream.name, (this.#busyByUpstream.get(upstream.name) ?? 1) - 1);
          this.#kick();
        });
      this.#inFlight.set(id, attempt);
      started.push(attempt);
    }
    await Promise.all(started);
  }

  /** Applies `tenant-relay queue retry|delete` requests left in the spool. */
  async applyRequests(): Promise<void> {
    const { spool } = this.#deps;
    for (const { id, kind } of await spool.requests()) {
      if (this.#inFlight.has(id)) continue; // after the attempt ends, at the next scan
      const entry = await spool.read(id);
      if (entry && kind === 'retry') {
        const now = { ...entry, nextAttemptAt: 0 };
        await spool.update(now);
        this.#due.set(id, dueOf(now));
      }
      if (entry && kind === 'delete') {
        await spool.remove(id);
        this.#due.delete(id);
        this.#takeBody(id);
        this.#deps.logger.info({ event: 'queue-deleted', id });
      }
      await spool.clearRequest(id, kind);
    }
  }

  /** Stops starting attempts; waits up to `graceMs` for those in flight (their state is on disk either way). */
  async stop(graceMs = 30_000): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.allSettled([...this.#inFlight.values()]), timeout]);
    clearTimeout(timer);
  }

  /**
   * The message's tenant as configured now: from the config files, else as the platform last answered.
   * 'wait' while the platform has no usable answer for it (a lookup is then running).
   */
  #tenantOf(d: Due, config: Config): Tenant | undefined | 'wait' {
    const id = d.entry.tenant;
    if (id === null) return undefined;
    const own = config.directory.byId(id);
    const platform = this.#deps.platform?.();
    if (own || !platform) return own;
    const known = platform.peekById(id);
    return known === undefined ? 'wait' : (known ?? undefined);
  }

  /** The tenant's upstream; the smarthost when it has none, is gone, or fallback applies. */
  #routeFor({ entry }: Due, tenant: Tenant | undefined, config: Config, now: number): Upstream {
    if (!tenant?.upstream) return config.smarthost;
    const after = tenant.delivery.fallbackToSmarthostAfterMs;
    if (after !== undefined && entry.firstTempFailureAt !== undefined && now - entry.firstTempFailureAt >= after) return config.smarthost;
    return tenant.upstream;
  }

  async #attempt(entry: QueuedMessage, upstream: Upstream, config: Config, now: number): Promise<void> {
    const { spool, logger } = this.#deps;
    const started = this.#clock();
    const pending = pendingRecipients(entry);
    const message = { source: this.#takeBody(entry.id) ?? (await spool.messageSource(entry.id)), eightBit: entry.eightBit === true };
    const result = await deliver(this.#deps.edge, upstream, { mailFrom: entry.mailFrom, rcptTo: pending }, message, config.upstreamHosts);
    const outcomes = new Map(result.outcomes.map((o) => [o.recipient, o]));
    const recipients = entry.recipients.map((r) => (r.status === 'pending' ? applyOutcome(r, outcomes.get(r.address)) : r));
    const ms = this.#clock() - started;
    this.#deps.metrics.recordDelivery(entry.tenant, result, ms / 1000);
    const log = { id: entry.id, tenant: entry.tenant, upstream: upstream.name, attempt: entry.attempts + 1, ms: Math.round(ms) };
    logger.info({ event: 'delivery-attempt', ...log, recipients: result.outcomes.map((o) => ({ rcpt: o.recipient, status: o.status, reply: formatReply(o.reply) })) });
    if (result.outcomes.some((o) => o.status === 'temp' && o.reply.enhanced === '4.4.2')) {
      // No answer after the data went out: the upstream may have the message. Retrying beats losing it.
      logger.warn({ event: 'possible-duplicate', ...log }, 'connection lost or timed out during the transaction; the retry may deliver twice');
    }

    const stillPending = recipients.filter((r) => r.status === 'pending');
    if (entry.sendTest) await this.#recordSendTest(entry.sendTest, entry, upstream.name, recipients, stillPending.length === 0);
    if (stillPending.length === 0) return this.#finish({ ...entry, recipients, attempts: entry.attempts + 1 }, now);
    if (now - entry.createdAt >= config.delivery.retry.maxLifetimeMs) {
      const expired = recipients.map((r) =>
        r.status === 'pending' ? { ...r, status: 'failed' as const, reply: `554 5.4.7 Delivery time expired; last reply: ${r.reply ?? 'none'}` } : r,
      );
      return this.#finish({ ...entry, recipients: expired, attempts: entry.attempts + 1 }, now);
    }
    const attempts = entry.attempts + 1;
    const next: QueuedMessage = {
      ...entry,
      recipients,
      attempts,
      nextAttemptAt: now + retryDelay(attempts, config.delivery.retry, this.#deps.random),
      firstTempFailureAt: entry.firstTempFailureAt ?? now,
      lastError: stillPending[0]?.reply ?? 'unknown',
    };
    await spool.update(next);
    this.#due.set(entry.id, dueOf(next));
    logger.info({ event: 'deferred', ...log, pending: stillPending.length, nextAttemptAt: new Date(next.nextAttemptAt).toISOString() });
  }

  /** Every recipient has a final status: record it, bounce what failed, and take the message out of the queue. */
  async #finish(entry: QueuedMessage, now: number): Promise<void> {
    const { spool, logger } = this.#deps;
    const failed = entry.recipients.filter((r) => r.status === 'failed');
    // Delivered to all: removing it is the record. With failures, the outcome is written before the DSN.
    if (failed.length > 0) await spool.update(entry);
    if (failed.length > 0 && entry.mailFrom !== '' && !entry.dsn) await this.#bounce(entry, failed, now);
    if (failed.length > 0) {
      await spool.moveToFailed(entry);
      for (const r of failed) logger.warn({ event: 'bounced', id: entry.id, tenant: entry.tenant, rcpt: r.address, reply: r.reply, dsn: entry.mailFrom !== '' && !entry.dsn });
    } else {
      await spool.remove(entry.id);
      logger.info({ event: 'delivered', id: entry.id, tenant: entry.tenant, recipients: entry.recipients.length, attempts: entry.attempts });
    }
    this.#due.delete(entry.id);
  }

  async #recordSendTest(token: string, entry: QueuedMessage, upstream: string, recipients: readonly QueuedRecipient[], final: boolean): Promise<void> {
    const header = await this.#deps.spool.headerBlock(entry.id);
    this.#deps.sendTests.record(token, {
      tenant: entry.tenant,
      upstream,
      recipients: recipients.map((r) => ({ rcpt: r.address, status: r.status, reply: r.reply ?? '' })),
      headers: header.toString('latin1'),
      final,
    });
  }

  /** Queues the DSN as a message of its own, so it is as durable as any other and retried the same way. */
  async #bounce(entry: QueuedMessage, failed: readonly QueuedRecipient[], now: number): Promise<void> {
    const { spool } = this.#deps;
    const config = this.#deps.config();
    const originalHeader = await spool.headerBlock(entry.id);
    const bytes = buildDsn({ original: entry, failed, originalHeader, reportingHost: config.hostname, now: new Date(now) });
    const id = spool.newId();
    const dsn: QueuedMessage = {
      v: 1,
      id,
      createdAt: now,
      mailFrom: '',
      tenant: null,
      size: bytes.length,
      recipients: [{ address: entry.mailFrom, status: 'pending' }],
      attempts: 0,
      nextAttemptAt: now,
      dsn: true,
    };
    await spool.commitInMemory(dsn, bytes);
    this.add(dsn, bytes);
  }
}

/** A queued message this process knows (its state as on disk) and when it is next due. */
interface Due {
  readonly entry: QueuedMessage;
  readonly at: number;
}

const dueOf = (entry: QueuedMessage): Due => ({ entry, at: entry.nextAttemptAt });

function applyOutcome(r: QueuedRecipient, outcome: RecipientOutcome | undefined): QueuedRecipient {
  if (!outcome) return r;
  const reply = formatReply(outcome.reply);
  if (outcome.status === 'sent') return { address: r.address, status: 'sent', reply };
  if (outcome.status === 'perm') return { address: r.address, status: 'failed', reply };
  return { address: r.address, status: 'pending', reply };
}

function slotsOf(upstream: Upstream): number {
  return upstream.kind === 'smtp' ? upstream.maxConnections : 1;
}
