// The DATA phase's bytes (RFC 5321 4.5.2): the message ends at CRLF "." CRLF, exactly (a bare LF "."
// is not an end: that is what SMTP smuggling plays on), and a line's leading dot is removed. The scan
// looks only at LF "." pairs (indexOf), so a chunk with no dot at a line start is handed on as it is.

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const LF_DOT = Buffer.from('\n.');

export class DotReader {
  /** The last two bytes before the next chunk (the message starts as if after CRLF). */
  #before1 = CR;
  #before0 = LF;
  /** A dot at a line start whose next bytes have not arrived: held until they do (at most 2 bytes). */
  #held: Buffer | undefined;
  /** Message bytes handed on so far (after unstuffing). */
  bytes = 0;

  /**
   * Hands the message's bytes in `chunk` to `keep` (subarrays: no copy); returns what came after the
   * final dot (possibly empty) once it has arrived, else undefined.
   */
  feed(input: Buffer, keep: (part: Buffer) => void): Buffer | undefined {
    const chunk = this.#held ? Buffer.concat([this.#held, input]) : input;
    this.#held = undefined;
    const len = chunk.length;
    let from = 0;
    let dot = len > 0 && chunk[0] === DOT && this.#before0 === LF ? 0 : this.#nextDot(chunk, 0);
    while (dot !== -1) {
      if (dot + 1 >= len || (chunk[dot + 1] === CR && dot + 2 >= len)) {
        // Undecided until the next bytes: what comes before the dot goes on, the dot waits.
        this.#emit(chunk, from, dot, keep);
        this.#remember(chunk, dot);
        this.#held = chunk.subarray(dot);
        return undefined;
      }
      const next = chunk[dot + 1];
      if (next === DOT) {
        // A stuffed dot: the first goes, the line goes on from the second.
        this.#emit(chunk, from, dot, keep);
        from = dot + 1;
        dot = this.#nextDot(chunk, dot + 2);
        continue;
      }
      if (next === CR && chunk[dot + 2] === LF && this.#crlfBefore(chunk, dot)) {
        this.#emit(chunk, from, dot, keep);
        return chunk.subarray(dot + 3);
      }
      dot = this.#nextDot(chunk, dot + 1);
    }
    this.#emit(chunk, from, len, keep);
    this.#remember(chunk, len);
    return undefined;
  }

  #nextDot(chunk: Buffer, from: number): number {
    const at = chunk.indexOf(LF_DOT, from === 0 ? 0 : from - 1);
    return at === -1 ? -1 : at + 1;
  }

  /** Whether CRLF comes right before `dot` (in this chunk or across its start). */
  #crlfBefore(chunk: Buffer, dot: number): boolean {
    if (dot >= 2) return chunk[dot - 2] === CR && chunk[dot - 1] === LF;
    if (dot === 1) return this.#before0 === CR && chunk[0] === LF;
    return this.#before1 === CR && this.#before0 === LF;
  }

  /** The two bytes before `end`, for the next chunk's checks. */
  #remember(chunk: Buffer, end: number): void {
    if (end >= 2) {
      this.#before1 = chunk.readUInt8(end - 2);
      this.#before0 = chunk.readUInt8(end - 1);
    } else if (end === 1) {
      this.#before1 = this.#before0;
      this.#before0 = chunk.readUInt8(0);
    }
  }

  #emit(chunk: Buffer, from: number, to: number, keep: (part: Buffer) => void): void {
    if (to <= from) return;
    this.bytes += to - from;
    keep(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
  }
}
