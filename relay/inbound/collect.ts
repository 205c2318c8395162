// Reads the DATA stream of one message into a Buffer, refusing to hold more than the size limit.
import type { Readable } from 'node:stream';

export type Collected = { readonly kind: 'complete'; readonly bytes: Buffer } | { readonly kind: 'too-big' };

/** Rejects when the client goes away before the final dot: nothing may be sent on a partial message. */
export function collectMessage(stream: Readable & { sizeExceeded?: boolean }, limit: number): Promise<Collected> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Keep reading (the client must reach the dot to hear our reply) but stop keeping.
      if (size <= limit) chunks.push(chunk);
    });
    stream.once('error', reject);
    stream.once('end', () => {
      if (size > limit || stream.sizeExceeded) resolve({ kind: 'too-big' });
      else resolve({ kind: 'complete', bytes: Buffer.concat(chunks, size) });
    });
  });
}
