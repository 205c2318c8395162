// SMTP smuggling defence. Servers disagree on whether a bare LF or bare CR ends a line, so "\n.\n" can
// end a message for one hop and not the next, and a second, forged message rides inside the first.
// DATA is checked as it streams: any bare CR, bare LF or NUL is found (to refuse the message) or
// repaired to CRLF (NUL dropped) before anything signs or forwards it.
import { crlfOnly } from '../line-ends.js';

const CR = 0x0d;
const LF = 0x0a;
const NUL = 0x00;

export class LineEndingGuard {
  readonly #normalize: boolean;
  /** The previous chunk ended in CR: whether it was bare depends on the next byte. */
  #pendingCr = false;
  found = false;

  constructor(mode: 'reject' | 'normalize') {
    this.#normalize = mode === 'normalize';
  }

  /** Checks a chunk; in normalize mode returns it repaired (a trailing CR waits for the next chunk). */
  push(chunk: Buffer): Buffer {
    const clean = this.#isClean(chunk);
    if (!clean) this.found = true;
    if (!this.#normalize) {
      this.#pendingCr = chunk.at(-1) === CR;
      return chunk;
    }
    if (!clean) return this.#repair(chunk);
    // Clean: only the held-back CR moves. A pending CR is always followed by this chunk's LF here.
    const head = this.#pendingCr ? Buffer.from([CR]) : undefined;
    this.#pendingCr = chunk.at(-1) === CR;
    const body = this.#pendingCr ? chunk.subarray(0, -1) : chunk;
    return head ? Buffer.concat([head, body]) : body;
  }

  /** At the end of DATA: a CR left pending was bare. Returns what normalize mode still owes. */
  end(): Buffer {
    if (!this.#pendingCr) return Buffer.alloc(0);
    this.#pendingCr = false;
    this.found = true;
    return this.#normalize ? Buffer.from([CR, LF]) : Buffer.alloc(0);
  }

  /** True when every CR in the chunk is followed by LF and every LF preceded by CR, and no NUL. */
  #isClean(chunk: Buffer): boolean {
    return crlfOnly(chunk, this.#pendingCr, true);
  }

  #repair(chunk: Buffer): Buffer {
    const out: number[] = [];
    let i = 0;
    if (this.#pendingCr) {
      out.push(CR, LF);
      if (chunk[0] === LF) i = 1;
      this.#pendingCr = false;
    }
    for (; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (b === NUL) continue;
      if (b === CR) {
        if (i + 1 === chunk.length) {
          this.#pendingCr = true;
          continue;
        }
        out.push(CR, LF);
        if (chunk[i + 1] === LF) i++;
      } else if (b === LF) out.push(CR, LF);
      else out.push(b);
    }
    return Buffer.from(out);
  }
}
