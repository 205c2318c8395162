// Messages on the platform's invalidation channel, taken at a bounded rate: whoever can publish on the
// channel can send thousands a second, and each one walks the tenant cache. Up to MAX_PER_WINDOW ids a
// second are dropped one by one; past that, the rest of the window is answered by dropping the whole cache
// once at its end (every tenant is asked again: slower for a moment, never stale). One log line per
// window says what happened, so a flood cannot flood the log either.
import type { Logger } from '../log.js';

const WINDOW_MS = 1000;
const MAX_PER_WINDOW = 100;
const TENANT_ID = /^(\*|[A-Za-z0-9][A-Za-z0-9_-]{0,62})$/;

export class InvalidationWindow {
  readonly #invalidate: (id: string) => number;
  readonly #logger: Logger;
  #acted = 0;
  #dropped = 0;
  #overflow = 0;
  #ignored = 0;
  #ids: string[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(invalidate: (id: string) => number, logger: Logger) {
    this.#invalidate = invalidate;
    this.#logger = logger;
  }

  take(message: string): void {
    if (!this.#timer) this.#open();
    const id = message.trim();
    if (!TENANT_ID.test(id)) {
      this.#ignored++;
      return;
    }
    if (this.#acted >= MAX_PER_WINDOW) {
      this.#overflow++;
      return;
    }
    this.#acted++;
    if (this.#ids.length < 5) this.#ids.push(id);
    this.#dropped += this.#invalidate(id);
  }

  #open(): void {
    this.#timer = setTimeout(() => this.#close(), WINDOW_MS);
    this.#timer.unref();
  }

  #close(): void {
    if (this.#overflow > 0) this.#dropped += this.#invalidate('*');
    if (this.#acted > 0 || this.#overflow > 0 || this.#ignored > 0) {
      const fields = { event: 'tenant-invalidated', messages: this.#acted + this.#overflow, tenants: this.#ids, dropped: this.#dropped, ...(this.#ignored ? { ignored: this.#ignored } : {}) };
      if (this.#overflow > 0) this.#logger.warn({ ...fields, overRate: this.#overflow }, `more than ${MAX_PER_WINDOW} invalidations in a second: the whole tenant cache was dropped once instead`);
      else this.#logger.info(fields);
    }
    this.#acted = this.#dropped = this.#overflow = this.#ignored = 0;
    this.#ids = [];
    this.#timer = undefined;
  }
}
