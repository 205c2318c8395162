import { createReadStream } from 'node:fs';
// A message is a header block and a body. Only the header block is ever parsed; the body is carried as
// the exact bytes that arrived.

export interface SplitMessage {
  /** The header lines and the blank line that ends them (empty when the message has no header). */
  readonly header: Buffer;
  readonly body: Buffer;
}

export function splitMessage(message: Buffer): SplitMessage {
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  // Whichever blank line comes first ends the header, whatever line endings the client used.
  const [at, length] = lf !== -1 && (crlf === -1 || lf < crlf + 1) ? [lf, 2] : crlf !== -1 ? [crlf, 4] : [-1, 0];
  if (at === -1) return { header: message, body: Buffer.alloc(0) };
  return { header: message.subarray(0, at + length), body: message.subarray(at + length) };
}

/**
 * The same split of a message held as the chunks it arrived in. The blank line is nearly always in the
 * first chunk: then nothing is joined, and the body is the rest of that chunk and the chunks after it
 * (a large message is copied once fewer). Else the chunks are joined and split as one.
 */
export function splitChunks(chunks: readonly Buffer[]): { readonly header: Buffer; readonly body: readonly Buffer[] } {
  const first = chunks[0] ?? Buffer.alloc(0);
  const split = splitMessage(first);
  // A blank line that ends inside the first chunk is the message's first (an earlier one would be in it too).
  if (split.header.length < first.length) return { header: split.header, body: [split.body, ...chunks.slice(1)] };
  const whole = splitMessage(chunks.length === 1 ? first : Buffer.concat(chunks));
  return { header: whole.header, body: whole.body.length > 0 ? [whole.body] : [] };
}

/**
 * Reads a file's header block (up to and with the blank line) without reading the body. Undefined when
 * the header section is larger than `limit`: no real message has one, and it is not worth parsing.
 */
export async function readHeaderBlock(file: string, limit = 1024 * 1024): Promise<Buffer | undefined> {
  let buffered = Buffer.alloc(0);
  for await (const chunk of createReadStream(file, { highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>) {
    buffered = Buffer.concat([buffered, chunk]);
    const { header } = splitMessage(buffered);
    if (header.length < buffered.length) return header.length <= limit ? header : undefined;
    if (buffered.length > limit) return undefined;
  }
  return buffered;
}
