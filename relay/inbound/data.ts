// Reading DATA, for both the queue and pass-through: the session hands each part of the message here as
// it comes (dot-unstuffed), and this checks it in one pass (the size limit: keep reading to the dot,
// stop keeping; bare CR/LF/NUL; 8-bit bytes) and keeps it: in memory up to a limit, past it in a temp
// file (staging.ts). A push, not a stream: at one message per connection, a Readable, its async
// iterator and a generator over it cost about 6 us a message in a loop and several times that between
// two messages' system calls, for bytes that nearly always arrive in one or two chunks.
import { isAscii } from 'node:buffer';
import type { InboundPolicy } from '../../config/types.js';
import type { MessageSink } from './smtp/session-types.js';
import { LineEndingGuard } from './line-endings.js';
import type { Received, Spill, Staging } from './staging.js';

export interface DataSummary {
  /** Bytes the client sent (before any repair). */
  received: number;
  /** Bare CR, bare LF or NUL were found (and, in normalize mode, repaired). */
  bareLineEndings: boolean;
  /** A byte over 127 was seen. */
  eightBit: boolean;
}

/** A message as DATA left it: where its kept bytes are, and what the checks found. */
export interface ReceivedData {
  readonly staged: Received;
  readonly summary: DataSummary;
}

export interface DataLimits {
  /** Past this many bytes, nothing more is kept (the message is refused once its dot has come). */
  readonly maxBytes: number;
  readonly bareLineEndings: InboundPolicy['bareLineEndings'];
  /** Kept in memory up to this many bytes; a larger message goes to a temp file. */
  readonly keepInMemory: number;
}

export class DataReceiver implements MessageSink {
  /**
   * Settles once the dot has come and what was kept is in memory or in its temp file (a disk error is
   * a `failed` staging: the client still reads to its dot and hears the 451). Rejects if the client left.
   */
  readonly received: Promise<ReceivedData>;
  readonly #summary: DataSummary = { received: 0, bareLineEndings: false, eightBit: false };
  readonly #guard: LineEndingGuard;
  readonly #limits: DataLimits;
  readonly #spillTo: () => Spill;
  #chunks: Buffer[] = [];
  #held = 0;
  #spill: Spill | undefined;
  #settle!: { resolve(r: ReceivedData): void; reject(err: Error): void };

  /** `more`: the session reads on after a write that asked it to wait. */
  constructor(staging: Staging, id: string, limits: DataLimits, more: () => void) {
    this.#limits = limits;
    this.#guard = new LineEndingGuard(limits.bareLineEndings);
    this.#spillTo = () => staging.spill(id, more);
    this.received = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    // Nobody may be waiting yet when the client leaves (the handler awaits it later): not an unhandled rejection.
    this.received.catch(() => {});
  }

  write(part: Buffer): boolean {
    const s = this.#summary;
    s.received += part.length;
    if (!s.eightBit && !isAscii(part)) s.eightBit = true;
    const kept = this.#guard.push(part);
    s.bareLineEndings = this.#guard.found;
    return s.received <= this.#limits.maxBytes ? this.#keep(kept) : true;
  }

  end(): void {
    const tail = this.#guard.end();
    this.#summary.bareLineEndings = this.#guard.found;
    if (tail.length > 0 && this.#summary.received <= this.#limits.maxBytes) this.#keep(tail);
    const spill = this.#spill;
    if (!spill) return this.#settle.resolve({ staged: { kind: 'memory', chunks: this.#chunks }, summary: this.#summary });
    spill.finish().then(
      (staged) => this.#settle.resolve({ staged, summary: this.#summary }),
      (err: unknown) => this.#settle.resolve({ staged: { kind: 'failed', error: err }, summary: this.#summary }),
    );
  }

  abort(err: Error): void {
    // Its temp file goes; the promise rejects after it has.
    const gone = this.#spill?.discard() ?? Promise.resolve();
    void gone.finally(() => this.#settle.reject(err));
  }

  #keep(kept: Buffer): boolean {
    if (kept.length === 0) return true;
    if (!this.#spill && this.#held + kept.length <= this.#limits.keepInMemory) {
      this.#chunks.push(kept);
      this.#held += kept.length;
      return true;
    }
    if (!this.#spill) {
      this.#spill = this.#spillTo();
      for (const chunk of this.#chunks) this.#spill.write(chunk);
      this.#chunks = [];
    }
    return this.#spill.write(kept);
  }
}
