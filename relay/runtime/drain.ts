// Draining: the relay stops taking mail (new sessions and transactions get 421 4.3.2, /readyz turns 503)
// and delivers what is queued now; at the deadline it says what is left, and what holds it. The one
// wait-until-empty also serves a stop with ops.drainSeconds and a process delivering a spool an earlier
// worker left.
import { performance } from 'node:perf_hooks';
import type { InboundServer } from '../inbound/server.js';
import type { Logger } from '../log.js';
import type { Scheduler } from '../queue/scheduler.js';

export interface DrainStatus {
  readonly draining: boolean;
  /** Messages still in the spool, and attempts running now. */
  readonly queued: number;
  readonly inFlight: number;
}

/** How often what waits for a retry is sent now while draining. */
const HURRY_EVERY_MS = 30_000;

/**
 * Resolves once the scheduler's queue is empty, `stopped()` says so, or `deadline` (performance.now())
 * passes, looking every `pollMs`; with `hurry`, what waits for a retry is attempted now, and every 30 s.
 */
export async function waitUntilEmpty(scheduler: Scheduler, o: { readonly deadline?: number; readonly stopped?: () => boolean; readonly hurry?: boolean; readonly pollMs?: number } = {}): Promise<void> {
  let hurried = -Infinity;
  while (!o.stopped?.() && scheduler.size > 0 && performance.now() < (o.deadline ?? Infinity)) {
    if (o.hurry && performance.now() - hurried >= HURRY_EVERY_MS) {
      scheduler.hurry();
      hurried = performance.now();
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 100));
  }
}

export class Drain {
  readonly #scheduler: Scheduler;
  readonly #inbound: () => readonly InboundServer[];
  readonly #logger: Logger;
  #draining = false;
  /** Stopping for good: an undrain cannot take mail again. */
  #closing = false;
  #running: Promise<DrainStatus> | undefined;

  constructor(scheduler: Scheduler, inbound: () => readonly InboundServer[], logger: Logger) {
    this.#scheduler = scheduler;
    this.#inbound = inbound;
    this.#logger = logger;
  }

  /** True once the relay refuses new mail (a drain, or a stop). */
  get draining(): boolean {
    return this.#draining;
  }

  status(): DrainStatus {
    return { draining: this.#draining, queued: this.#scheduler.size, inFlight: this.#scheduler.inFlight };
  }

  /** Stops taking mail and delivers what is queued now; resolves when the spool is empty or `deadlineMs` has passed. */
  start(deadlineMs: number): Promise<DrainStatus> {
    this.#draining = true;
    for (const s of this.#inbound()) s.closeIdle();
    this.#running ??= (async () => {
      this.#logger.info({ event: 'draining', queued: this.#scheduler.size }, 'refusing new mail (421 4.3.2) and delivering what is queued');
      // The last chance to deliver: what waits for a retry goes now, and again every 30 s.
      await waitUntilEmpty(this.#scheduler, { deadline: performance.now() + deadlineMs, stopped: () => !this.#draining, hurry: true });
      const status = this.status();
      // What is left, and why: held by a limit (and which), or waiting for a retry.
      const held = this.#scheduler.holds.reasons();
      if (this.#draining) this.#logger.info({ event: 'drained', queued: status.queued, ...(Object.keys(held).length ? { held } : {}) }, status.queued === 0 ? 'the spool is empty' : 'mail is left in the spool');
      this.#running = undefined;
      return status;
    })();
    return this.#running;
  }

  /** Takes mail again after a drain that was not followed by a stop. */
  undrain(): DrainStatus {
    if (this.#draining && !this.#closing) {
      this.#draining = false;
      this.#logger.info({ event: 'undrained', queued: this.#scheduler.size }, 'taking mail again');
    }
    return this.status();
  }

  /** The relay is stopping: it refuses mail from now on, for good. */
  close(): void {
    this.#closing = true;
    this.#draining = true;
  }
}

/** Waits (up to `graceMs`) until no session is left: while draining, each ends after its current message. */
export async function waitForSessions(inbound: readonly InboundServer[], graceMs: number): Promise<void> {
  const deadline = performance.now() + graceMs;
  while (inbound.some((s) => s.sessions > 0) && performance.now() < deadline) {
    // Again each round: a session whose DATA just ended is idle now.
    for (const s of inbound) s.closeIdle();
    await new Promise((r) => setTimeout(r, 50));
  }
}
