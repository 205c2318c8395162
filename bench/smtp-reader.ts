// How the bench's bare SMTP servers (the sink, the floor relay) read a session: command lines, after a
// 354 the message up to its final dot, found even when the end marker is split across chunks, and after
// a BDAT (RFC 3030) as many bytes as it said. No library, and as little work as reading SMTP allows: what
// these servers cost is the floor they stand for.
const END = Buffer.from('\r\n.\r\n');
const CRLF = Buffer.from('\r\n');
const NONE = Buffer.alloc(0);

export interface SmtpReaderHandlers {
  /**
   * A command line (its line end included). `data`: it was DATA, answered with 354, and the message
   * follows; a number: it was a BDAT of that many bytes, which follow.
   */
  command(line: string): 'data' | number | undefined;
  /** The message's bytes as they arrive, still dot-stuffed, up to the CRLF before the final dot. */
  body?(bytes: Buffer): void;
  /** The final dot has arrived. */
  endOfData(): void;
  /** A BDAT chunk's last byte has arrived. */
  endOfChunk?(): void;
}

/** Returns what to call with each chunk the socket reads. */
export function smtpReader(handlers: SmtpReaderHandlers): (chunk: Buffer) => void {
  let inData = false;
  let line = '';
  // The message's last bytes, held back until they are known not to begin the end marker.
  let tail: Buffer = NONE;
  // How many bytes at the start of `tail` are not the message's: the CRLF assumed before the message, so
  // that a message that is nothing but the final dot still ends.
  let assumed = 0;
  /** Bytes of a BDAT chunk still to come (-1: none is being read). */
  let chunkLeft = -1;
  return (chunk) => {
    let rest = chunk;
    while (rest.length > 0 || chunkLeft === 0) {
      if (chunkLeft >= 0) {
        const taken = Math.min(chunkLeft, rest.length);
        if (taken > 0) handlers.body?.(rest.subarray(0, taken));
        rest = rest.subarray(taken);
        chunkLeft -= taken;
        if (chunkLeft > 0) return;
        chunkLeft = -1;
        handlers.endOfChunk?.();
        continue;
      }
      if (inData) {
        const joined = tail.length > 0 ? Buffer.concat([tail, rest]) : rest;
        const end = joined.indexOf(END);
        if (end === -1) {
          const keep = Math.max(0, joined.length - END.length + 1);
          if (keep > assumed) handlers.body?.(joined.subarray(assumed, keep));
          assumed = Math.max(0, assumed - keep);
          tail = joined.subarray(keep);
          return;
        }
        if (end + 2 > assumed) handlers.body?.(joined.subarray(assumed, end + 2));
        rest = joined.subarray(end + END.length);
        tail = NONE;
        assumed = 0;
        inData = false;
        handlers.endOfData();
        continue;
      }
      const nl = rest.indexOf(10);
      if (nl === -1) {
        line += rest.toString('latin1');
        return;
      }
      line += rest.subarray(0, nl + 1).toString('latin1');
      rest = rest.subarray(nl + 1);
      const command = line;
      line = '';
      const next = handlers.command(command);
      if (next === 'data') {
        inData = true;
        tail = CRLF;
        assumed = CRLF.length;
      } else if (typeof next === 'number') chunkLeft = next;
    }
  };
}
