// Reading DATA, for both the queue and pass-through: the size limit (keep reading to the dot, stop
// keeping) and the bare CR/LF/NUL guard, in one pass over the stream.
import { isAscii } from 'node:buffer';
import type { Readable } from 'node:stream';
import type { InboundPolicy } from '../../config/types.js';
import { LineEndingGuard } from './line-endings.js';

export interface DataSummary {
  /** Bytes the client sent (before any repair). */
  received: number;
  /** Bare CR, bare LF or NUL were found (and, in normalize mode, repaired). */
  bareLineEndings: boolean;
  /** A byte over 127 was seen. */
  eightBit: boolean;
}

/** Yields the message bytes to keep; `summary` is complete once the generator is done. */
export async function* readData(
  stream: Readable,
  limit: number,
  mode: InboundPolicy['bareLineEndings'],
  summary: DataSummary,
): AsyncGenerator<Buffer> {
  const guard = new LineEndingGuard(mode);
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    summary.received += chunk.length;
    if (!summary.eightBit && !isAscii(chunk)) summary.eightBit = true;
    const kept = guard.push(chunk);
    summary.bareLineEndings = guard.found;
    if (summary.received <= limit) yield kept;
  }
  const tail = guard.end();
  summary.bareLineEndings = guard.found;
  if (tail.length > 0 && summary.received <= limit) yield tail;
}
