// A received message as the message stage takes it: the header block (parsed, rewritten, signed) and the
// body (carried as the bytes that arrived), from memory or from the temp file a large message went to.
import { createReadStream } from 'node:fs';
import type { FileRange } from '../files.js';
import { readHeaderBlock, splitChunks } from '../message/split.js';
import type { BodySource } from '../message/transform.js';
import type { Received } from './staging.js';

/** Messages up to this size are handled in memory; larger ones go through a temp file in the spool. */
export const KEEP_IN_MEMORY_BYTES = 1024 * 1024;
const MAX_HEADER_BYTES = 1024 * 1024;

export type MessageParts =
  | { readonly header: Buffer; readonly body: readonly Buffer[] }
  | {
      readonly header: Buffer;
      /** Opens a fresh stream of the body each time it is called (DKIM reads it). */
      readonly body: Exclude<BodySource, readonly Buffer[]>;
      /** Where the body is: copied from there with one reused buffer, no garbage. */
      readonly bodyFile: FileRange;
    };

/** Undefined when the header section is larger than 1 MiB (refused: no real message has one). */
export async function messageParts(received: Exclude<Received, { kind: 'failed' }>): Promise<MessageParts | undefined> {
  if (received.kind === 'memory') {
    const { header, body } = splitChunks(received.chunks);
    return header.length > MAX_HEADER_BYTES ? undefined : { header, body };
  }
  const { path } = received;
  const header = await readHeaderBlock(path, MAX_HEADER_BYTES);
  return header ? { header, body: () => createReadStream(path, { start: header.length }), bodyFile: { path, start: header.length } } : undefined;
}
