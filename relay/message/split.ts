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
