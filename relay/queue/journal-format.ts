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
import { withSharedTexts } from './shared-texts.js';

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

/** Where one record's parts are in a segment, read from its header alone. */
interface RecordSpan {
  readonly kind: number;
  readonly at: number;
  /** The record's text (a message's state as JSON, or a done marker's id) starts here, */
  readonly text: number;
  /** and its bytes (a message) here, to `end`. */
  readonly bytes: number;
  readonly end: number;
  readonly crc: number;
}

/** A segment's records by their headers, up to the first without the magic or past the file's end. */
function spansOf(bytes: Buffer): RecordSpan[] {
  const spans: RecordSpan[] = [];
  let at = 0;
  while (at + HEADER_BYTES <= bytes.length && bytes.readUInt32BE(at) === MAGIC) {
    const text = at + HEADER_BYTES;
    const end = text + bytes.readUInt32BE(at + 5) + bytes.readUInt32BE(at + 9);
    if (end > bytes.length) break;
    spans.push({ kind: bytes[at + 4] ?? 0, at, text, bytes: text + bytes.readUInt32BE(at + 5), end, crc: bytes.readUInt32BE(at + 13) });
    at = end;
  }
  return spans;
}

const intact = (bytes: Buffer, s: RecordSpan) => zlib.crc32(bytes.subarray(s.text, s.end)) === s.crc;

/** Reads one segment's records, stopping at the first that is torn or damaged. */
export function parseSegment(bytes: Buffer, segment: string): ParsedSegment {
  const messages: JournaledMessage[] = [];
  const done: string[] = [];
  let at = 0;
  for (const s of spansOf(bytes)) {
    if (!intact(bytes, s)) break;
    const json = bytes.toString('utf8', s.text, s.bytes);
    if (s.kind === KIND_DONE) done.push(json);
    else if (s.kind === KIND_MESSAGE) {
      const entry = parseEntry(json);
      if (!entry) break;
      messages.push({ entry, segment, offset: s.bytes, length: s.end - s.bytes });
    } else break;
    at = s.end;
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
    return isQueuedMessage(entry) ? withSharedTexts(entry) : undefined;
  } catch {
    return undefined;
  }
}

const ID_KEY = Buffer.from('"id":"');

/** A message record's id, read from its JSON without parsing it (undefined: parse it to know). */
function quickId(bytes: Buffer, s: RecordSpan): string | undefined {
  // Within the record's text only: never a scan on into the message and the records after it.
  const text = bytes.subarray(s.text, s.bytes);
  const key = text.indexOf(ID_KEY);
  if (key === -1) return undefined;
  const end = text.indexOf(0x22, key + ID_KEY.length);
  return end === -1 ? undefined : text.toString('latin1', key + ID_KEY.length, end);
}

/**
 * The messages still in a journal directory, read without changing anything (`tenant-relay queue`, the
 * mail console). Only the messages not yet done are checked and parsed: a running relay's segments hold
 * thousands of delivered ones (parsing them all cost ~120 ms of the relay's thread per console lookup
 * with two 8 MB segments). A record this reader skips is never shown, so where recovery would stop at a
 * damaged record, this reader reads on past it by its header.
 */
export async function readJournal(dir: string): Promise<{ live: JournaledMessage[] }> {
  const done = new Set<string>();
  const found = new Map<string, { bytes: Buffer; span: RecordSpan; segment: string }>();
  for (const segment of await segmentFiles(dir)) {
    const bytes = await fsp.readFile(segment).catch(() => Buffer.alloc(0));
    for (const span of spansOf(bytes)) {
      if (span.kind === KIND_DONE) {
        if (intact(bytes, span)) done.add(bytes.toString('utf8', span.text, span.bytes));
      } else if (span.kind === KIND_MESSAGE) {
        const id = quickId(bytes, span) ?? (intact(bytes, span) ? parseEntry(bytes.toString('utf8', span.text, span.bytes))?.id : undefined);
        if (id !== undefined) found.set(id, { bytes, span, segment });
      }
    }
  }
  const live: JournaledMessage[] = [];
  for (const [id, { bytes, span, segment }] of found) {
    if (done.has(id) || !intact(bytes, span)) continue;
    // Its own id decides, should the quick read have caught another "id" key.
    const entry = parseEntry(bytes.toString('utf8', span.text, span.bytes));
    if (entry && !done.has(entry.id)) live.push({ entry, segment, offset: span.bytes, length: span.end - span.bytes });
  }
  return { live };
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
