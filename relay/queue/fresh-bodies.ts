// The bytes of messages accepted moments ago, kept for their first attempt so it need not read them back
// from the spool; within a fixed memory budget, past which attempts read the spool.

/** Memory for messages awaiting their first attempt. */
const BUDGET_BYTES = 32 * 1024 * 1024;

export class FreshBodies {
  readonly #bodies = new Map<string, Buffer>();
  #bytes = 0;

  /** Keeps a message's bytes if the budget has room. */
  keep(id: string, bytes: Buffer): void {
    if (this.#bytes + bytes.length > BUDGET_BYTES) return;
    this.#bodies.set(id, bytes);
    this.#bytes += bytes.length;
  }

  /** The bytes kept for a message, given up (an attempt takes them once; a forgotten message drops them). */
  take(id: string): Buffer | undefined {
    const bytes = this.#bodies.get(id);
    if (bytes) {
      this.#bodies.delete(id);
      this.#bytes -= bytes.length;
    }
    return bytes;
  }
}
