// The journal's records on disk (journal.ts writes them, the spool reads them back after a restart):
//
//   journal/<seq>.log   record := header(17 bytes) text bytes
//   header := magic "TRJ1" | kind (1 message, 2 done) | text length u32 | bytes length u32 | crc32 u32
//   a message's text is its state as JSON and its bytes the message; a done record's text is the id
//
// A torn or corrupt record ends what is read of its segment: what follows it was never acknowledged.
// Zeros end it too, without counting as damage: a segment's file is grown ahead of its records (journal.ts).
import fsp from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { lengthOf, partsOf } from '../message-bytes.js';
import type { MessageBytes } from '../types.js';
import { isQueuedMessage, type QueuedMessage } from './entry.js';

const MAGIC = 0x54524a31;
const HEADER_BYTES = 17;
export const KIND_MESSAGE = 1;
export const KIND_DONE = 2;
/** A new segment is started past this size; a small count of segments keeps recovery and cleanup cheap. */
export const SEGMENT_BYTES = 8 * 1024 * 1024;

/** Where a journaled message's bytes are: in `segment`, from `offset`, `length` bytes. */
export interface JournalPlace {
  readonly segment: string;
  readonly offset: number;
  readonly length: number;
}

export interface JournaledMessage extends JournalPlace {
  readonly entry: QueuedMessage;
}

export interface ParsedSegment {
  readonly messages: JournaledMessage[];
  readonly done: string[];
  /** Bytes at the end that are not a whole, intact record (zeros after them aside): a write that never completed (never acknowledged). */
  readonly discarded: number;
}

/** Reads one segment's records, stopping at the first that is torn or damaged. */
export function parseSegment(bytes: Buffer, segment: string): ParsedSegment {
  const messages: JournaledMessage[] = [];
  const done: string[] = [];
  let at = 0;
  while (at + HEADER_BYTES <= bytes.length) {
    if (bytes.readUInt32BE(at) !== MAGIC) break;
    const kind = bytes[at + 4];
    const jsonLength = bytes.readUInt32BE(at + 5);
    const length = bytes.readUInt32BE(at + 9);
    const end = at + HEADER_BYTES + jsonLength + length;
    if (end > bytes.length || zlib.crc32(bytes.subarray(at + HEADER_BYTES, end)) !== bytes.readUInt32BE(at + 13)) break;
    const json = bytes.toString('utf8', at + HEADER_BYTES, at + HEADER_BYTES + jsonLength);
    if (kind === KIND_DONE) done.push(json);
    else if (kind === KIND_MESSAGE) {
      const entry = parseEntry(json);
      if (!entry) break;
      messages.push({ entry, segment, offset: at + HEADER_BYTES + jsonLength, length });
    } else break;
    at = end;
  }
  return { messages, done, discarded: Math.max(0, endOfData(bytes) - at) };
}

/** Past the last byte that is not zero: the rest is zeros the file was grown by, never a record. */
function endOfData(bytes: Buffer): number {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return end;
}

function parseEntry(json: string): QueuedMessage | undefined {
  try {
    const entry: unknown = JSON.parse(json);
    return isQueuedMessage(entry) ? entry : undefined;
  } catch {
    return undefined;
  }
}

/** The messages still in a journal directory, read without changing anything (for `tenant-relay queue`). */
export async function readJournal(dir: string): Promise<{ live: JournaledMessage[]; segments: { path: string; discarded: number }[] }> {
  const segments = await segmentFiles(dir);
  const all = new Map<string, JournaledMessage>();
  const done: string[] = [];
  const report: { path: string; discarded: number }[] = [];
  for (const file of segments) {
    const parsed = parseSegment(await fsp.readFile(file).catch(() => Buffer.alloc(0)), file);
    for (const m of parsed.messages) all.set(m.entry.id, m);
    done.push(...parsed.done);
    report.push({ path: file, discarded: parsed.discarded });
  }
  for (const id of done) all.delete(id);
  return { live: [...all.values()], segments: report };
}

/** A journaled message's bytes, read by another process (`tenant-relay queue show`). */
export async function readJournalBytes(place: JournalPlace): Promise<Buffer> {
  const handle = await fsp.open(place.segment, 'r');
  try {
    return await readRange(handle, place);
  } finally {
    await handle.close();
  }
}

export async function readRange(handle: fsp.FileHandle, place: JournalPlace): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(place.length);
  const { bytesRead } = await handle.read(buffer, 0, place.length, place.offset);
  if (bytesRead !== place.length) throw new Error(`journal ${place.segment}: a message at ${place.offset} is cut short`);
  return buffer;
}

export async function segmentFiles(dir: string): Promise<string[]> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  return names
    .filter((n) => /^\d{12}\.log$/.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

/** A record's buffers, written in order; a message's parts are written as they are (not joined). */
export function record(kind: number, json: string, bytes?: MessageBytes): Buffer[] {
  const head = Buffer.alloc(HEADER_BYTES);
  const jsonBytes = Buffer.from(json);
  const parts = bytes ? partsOf(bytes) : [];
  let crc = zlib.crc32(jsonBytes);
  for (const part of parts) crc = zlib.crc32(part, crc);
  head.writeUInt32BE(MAGIC, 0);
  head[4] = kind;
  head.writeUInt32BE(jsonBytes.length, 5);
  head.writeUInt32BE(bytes ? lengthOf(bytes) : 0, 9);
  head.writeUInt32BE(crc, 13);
  return [head, jsonBytes, ...parts];
}
