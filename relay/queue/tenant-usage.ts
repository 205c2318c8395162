// Messages and bytes waiting in the spool, by tenant id ('' for mail of no tenant): what spool quotas count.
import type { QueuedMessage } from './entry.js';

export interface Usage {
  readonly messages: number;
  readonly bytes: number;
}

export class TenantUsage {
  readonly #byTenant = new Map<string, { messages: number; bytes: number }>();

  /** A message joins (1) or leaves (-1) the spool. */
  count(entry: QueuedMessage, sign: 1 | -1): void {
    const key = entry.tenant ?? '';
    const u = this.#byTenant.get(key) ?? { messages: 0, bytes: 0 };
    u.messages += sign;
    u.bytes += sign * entry.size;
    if (u.messages <= 0) this.#byTenant.delete(key);
    else this.#byTenant.set(key, u);
  }

  of(tenant: string | null): Usage {
    return this.#byTenant.get(tenant ?? '') ?? { messages: 0, bytes: 0 };
  }
}
