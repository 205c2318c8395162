// A message in memory: one buffer, or its parts in order. A large message keeps its rewritten header
// block apart from its body: joining them copied the whole message once more before the 250, and at
// 200 KB those copies are what brought V8's full collections every dozen messages.
import type { MessageBytes, MessageSource } from './types.js';

/** Up to this size the parts are joined: one buffer is one write to the upstream, not one per part. */
const JOIN_MAX_BYTES = 64 * 1024;

export const partsOf = (bytes: MessageBytes): readonly Buffer[] => (Buffer.isBuffer(bytes) ? [bytes] : bytes);

export const lengthOf = (bytes: MessageBytes): number => (Buffer.isBuffer(bytes) ? bytes.length : bytes.reduce((n, b) => n + b.length, 0));

export const isInMemory = (source: MessageSource): source is MessageBytes => Buffer.isBuffer(source) || !('path' in source);

/** A message made of parts: one buffer when it is small, else the parts as they are. */
export function joinedIfSmall(parts: readonly Buffer[]): MessageBytes {
  const length = lengthOf(parts);
  return length <= JOIN_MAX_BYTES ? Buffer.concat(parts, length) : parts;
}
