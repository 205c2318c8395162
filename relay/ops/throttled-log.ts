// One log line per interval for something that can repeat many times a second (a full disk, a poisoned
// store, a flood of messages on a channel): the first occurrence is logged at once, the rest are counted
// and said with the next line, so the log stays readable and cannot be made to grow by whoever repeats it.
import type { Logger } from '../log.js';

export class ThrottledLog {
  readonly #logger: Logger;
  readonly #everyMs: number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(logger: Logger, everyMs = 60_000) {
    this.#logger = logger;
    this.#everyMs = everyMs;
  }

  /** Logs `fields` (keyed by their `event`) unless the same event was logged within the interval. */
  warn(fields: { readonly event: string } & Record<string, unknown>, message: string, now = Date.now()): void {
    const seen = this.#last.get(fields.event);
    if (seen && now - seen.at < this.#everyMs) {
      seen.suppressed++;
      return;
    }
    this.#last.set(fields.event, { at: now, suppressed: 0 });
    this.#logger.warn({ ...fields, ...(seen?.suppressed ? { repeatedSinceLastLine: seen.suppressed } : {}) }, message);
  }
}
