// Pass-through reads the whole message into memory (it is sent while the client waits), within the limit.
import type { Readable } from 'node:stream';
import type { InboundPolicy } from '../../config/types.js';
import { type DataSummary, readData } from './data.js';

export type Collected =
  | { readonly kind: 'complete'; readonly bytes: Buffer; readonly bareLineEndings: boolean; readonly eightBit: boolean }
  | { readonly kind: 'too-big' };

/** Rejects when the client goes away before the final dot: nothing may be sent on a partial message. */
export async function collectMessage(stream: Readable & { sizeExceeded?: boolean }, limit: number, mode: InboundPolicy['bareLineEndings']): Promise<Collected> {
  const summary: DataSummary = { received: 0, bareLineEndings: false, eightBit: false };
  const chunks: Buffer[] = [];
  for await (const chunk of readData(stream, limit, mode, summary)) chunks.push(chunk);
  if (summary.received > limit || stream.sizeExceeded) return { kind: 'too-big' };
  return { kind: 'complete', bytes: Buffer.concat(chunks), bareLineEndings: summary.bareLineEndings, eightBit: summary.eightBit };
}
