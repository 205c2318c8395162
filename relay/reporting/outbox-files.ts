// An outbox's files (README: Delivery events): segments of JSON lines named by sequence number, the cursor,
// the dead letters. Read and written here for the outbox (outbox.ts), and read without it by the commands
// (a live relay owns the outbox): what waits, what was dead-lettered, and the replay of dead letters.
import { closeSync, ftruncateSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { PRIVATE_FILE } from '../private-files.js';

/** Where reading resumes: a segment, a byte offset in it, and how many of its lines lie before that. */
export interface Cursor {
  readonly seq: number;
  readonly offset: number;
  readonly line: number;
}

export const segmentName = (seq: number): string => `${String(seq).padStart(12, '0')}.jsonl`;

/** The sequence numbers of the segments in `dir`, oldest first. */
export function segmentsIn(dir: string): number[] {
  return readdirSync(dir)
    .map((f) => /^(\d{12})\.jsonl$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

export function readCursor(dir: string): Cursor {
  try {
    const c = JSON.parse(readFileSync(path.join(dir, 'cursor'), 'utf8')) as Cursor;
    if ([c.seq, c.offset, c.line].every((n) => Number.isInteger(n) && n >= 0)) return c;
  } catch {
    // None yet, or unreadable: from the oldest segment (sending some twice beats losing them).
  }
  return { seq: 0, offset: 0, line: 0 };
}

// Not fsynced: after a machine crash an older cursor sends some events twice, never loses one.
export function writeCursor(dir: string, cursor: Cursor): void {
  const file = path.join(dir, 'cursor');
  writeFileSync(`${file}.new`, JSON.stringify(cursor), { mode: PRIVATE_FILE });
  renameSync(`${file}.new`, file);
}

/** A segment's complete lines and their bytes; a torn tail (a write cut by a crash) is cut off. */
export function scanSegment(file: string): { lines: number; bytes: number } {
  const bytes = readFileSync(file);
  const end = bytes.lastIndexOf(10) + 1;
  if (end < bytes.length) {
    const fd = openSync(file, 'r+');
    ftruncateSync(fd, end);
    closeSync(fd);
  }
  let lines = 0;
  for (let i = bytes.indexOf(10); i !== -1 && i < end; i = bytes.indexOf(10, i + 1)) lines++;
  return { lines, bytes: end };
}

export async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Events the webhook refused for good, kept (README: Delivery events). */
export const DEAD = 'dead.jsonl';

/**
 * An outbox as the commands see it, read without writing (a live relay owns it): events waiting, and
 * events dead-lettered.
 */
export function outboxState(dir: string): { readonly backlog: number; readonly deadLettered: number } {
  const cursor = readCursor(dir);
  let backlog = 0;
  for (const seq of segmentsIn(dir)) {
    if (seq < cursor.seq) continue;
    backlog += countLines(path.join(dir, segmentName(seq))) - (seq === cursor.seq ? cursor.line : 0);
  }
  return { backlog: Math.max(0, backlog), deadLettered: countLines(path.join(dir, DEAD)) };
}

/** Hands the dead letters to the sender to send again (it appends them at its next look). Returns how many. */
export function replayDeadLetters(dir: string, now = Date.now()): number {
  const dead = path.join(dir, DEAD);
  const count = countLines(dead);
  if (count > 0) renameSync(dead, path.join(dir, `replay-${now}.jsonl`));
  return count;
}

export function countLines(file: string): number {
  try {
    const bytes = readFileSync(file);
    let n = 0;
    for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) n++;
    return n;
  } catch {
    return 0;
  }
}

