// The bytes of messages accepted moments ago, kept for their first attempt so it need not read them back
// from the spool; within a fixed memory budget, past which attempts read the spool.
import { lengthOf } from '../message-bytes.js';
import type { MessageBytes } from '../types.js';

/** Memory for messages awaiting their first attempt. */
const BUDGET_BYTES = 32 * 1024 * 1024;

export class FreshBodies {
  readonly #bodies = new Map<string, { readonly bytes: MessageBytes; readonly length: number }>();
  #bytes = 0;

  /** Keeps a message's bytes if the budget has room. */
  keep(id: string, bytes: MessageBytes): void {
    const length = lengthOf(bytes);
    if (this.#bytes + length > BUDGET_BYTES) return;
    this.#bodies.set(id, { bytes, length });
    this.#bytes += length;
  }

  /** The bytes kept for a message, given up (an attempt takes them once; a forgotten message drops them). */
  take(id: string): MessageBytes | undefined {
    const kept = this.#bodies.get(id);
    if (!kept) return undefined;
    this.#bodies.delete(id);
    this.#bytes -= kept.length;
    return kept.bytes;
  }
}
