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
