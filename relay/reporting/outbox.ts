// A webhook's outbox: delivery events written beside the spool, read back in batches in the order they
// were written, and forgotten once the webhook has taken them. On disk: segments of JSON lines
// (<seq>.jsonl) and a cursor (the first event not yet taken). Appends are synchronous writes, made before
// the client hears 250 (a killed process loses none), and a batch is fsynced before it is sent, so what
// the platform was told is on disk. A receiver that is down for long fills it up to maxBacklogEvents;
// past that the oldest segment goes, counted and logged by the caller.
import { closeSync, fdatasync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { PRIVATE_DIR, PRIVATE_FILE } from '../private-files.js';

interface Segment {
  readonly seq: number;
  /** Complete lines in the file. */
  lines: number;
  bytes: number;
}

/** Where reading resumes: a segment, a byte offset in it, and how many of its lines lie before that. */
interface Cursor {
  readonly seq: number;
  readonly offset: number;
  readonly line: number;
}

export interface Batch {
  /** The events, each a JSON text. */
  readonly events: readonly string[];
  /** Where the cursor goes once the webhook has taken them. */
  readonly next: Cursor;
  /** Events skipped while reading: lines a crash left unreadable. */
  readonly unreadable: number;
}

const SEGMENT_MAX_BYTES = 4 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;
const name = (seq: number) => `${String(seq).padStart(12, '0')}.jsonl`;

export class Outbox {
  readonly dir: string;
  readonly #maxBacklog: number;
  /** Lines per segment: a tenth of the cap (so dropping one segment keeps most of it), 1,000 at most. */
  readonly #segmentLines: number;
  readonly #segments: Segment[] = [];
  #cursor: Cursor;
  #fd: number | undefined;
  #unsynced = false;
  #backlog = 0;
  #closed = false;

  /** Opens (or creates) the outbox in `dir`, counting what is left from an earlier run. */
  constructor(dir: string, maxBacklog: number) {
    this.dir = dir;
    this.#maxBacklog = maxBacklog;
    this.#segmentLines = Math.max(1, Math.min(1000, Math.ceil(maxBacklog / 10)));
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
    this.#cursor = this.#readCursor();
    const seqs = readdirSync(dir)
      .map((f) => /^(\d{12})\.jsonl$/.exec(f)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    for (const seq of seqs) {
      if (seq < this.#cursor.seq) {
        rmSync(this.#file(seq), { force: true });
        continue;
      }
      this.#segments.push(this.#scan(seq, seq === seqs.at(-1)));
    }
    if (this.#segments.length > 0 && this.#cursor.seq < (this.#segments[0]?.seq ?? 0)) this.#cursor = { seq: this.#segments[0]?.seq ?? 0, offset: 0, line: 0 };
    this.#backlog = this.#segments.reduce((n, s) => n + s.lines, 0) - (this.#segments[0]?.seq === this.#cursor.seq ? this.#cursor.line : 0);
  }

  /** Events written and not yet taken by the webhook. */
  get backlog(): number {
    return this.#backlog;
  }

  /** Writes events (one JSON text each) at the end. Returns how many old ones were dropped for room. */
  append(events: readonly string[]): number {
    if (this.#closed || events.length === 0) return 0;
    let current = this.#segments.at(-1);
    if (!current || this.#fd === undefined || current.lines >= this.#segmentLines || current.bytes >= SEGMENT_MAX_BYTES) current = this.#rotate();
    const text = `${events.join('\n')}\n`;
    const written = writeSync(this.#fd as number, text);
    current.bytes += written;
    current.lines += events.length;
    this.#backlog += events.length;
    this.#unsynced = true;
    return this.#trim();
  }

  /**
   * Up to `max` events from the cursor, fsynced first; undefined when there are none. The batch counts as
   * taken only when ack() says so: a batch read again after a failure is the same events.
   */
  async read(max: number): Promise<Batch | undefined> {
    if (this.#backlog === 0) return undefined;
    if (this.#unsynced && this.#fd !== undefined) {
      this.#unsynced = false;
      const fd = this.#fd;
      await new Promise<void>((resolve) => fdatasync(fd, () => resolve()));
    }
    const events: string[] = [];
    let unreadable = 0;
    let { seq, offset, line } = this.#cursor;
    while (events.length < max) {
      const segment = this.#segments.find((s) => s.seq === seq);
      if (!segment) break;
      if (line >= segment.lines) {
        const next = this.#segments.find((s) => s.seq > seq);
        if (!next) break;
        ({ seq, offset, line } = { seq: next.seq, offset: 0, line: 0 });
        continue;
      }
      const chunk = await readAt(this.#file(seq), offset, READ_CHUNK).catch(() => undefined);
      if (!chunk) break; // dropped meanwhile: the next read starts from the moved cursor
      let start = 0;
      while (events.length < max && line < segment.lines) {
        const end = chunk.indexOf(10, start);
        if (end === -1) break;
        const text = chunk.toString('utf8', start, end);
        if (isJsonObject(text)) events.push(text);
        else unreadable++;
        offset += end - start + 1;
        start = end + 1;
        line++;
      }
      if (start === 0) break; // a line longer than a chunk: never written by append()
    }
    if (events.length === 0 && unreadable === 0) return undefined;
    return { events, next: { seq, offset, line }, unreadable };
  }

  /** The webhook took `batch`: move past it, and delete the segments it finished. */
  ack(batch: Batch): void {
    if (this.#closed) return;
    const { next } = batch;
    // Past the cursor only: the oldest events may have been dropped for room while the batch was out.
    if (next.seq < this.#cursor.seq || (next.seq === this.#cursor.seq && next.line <= this.#cursor.line)) return;
    this.#backlog = Math.max(0, this.#backlog - this.#between(this.#cursor, next));
    this.#cursor = next;
    while (this.#segments.length > 1 && (this.#segments[0]?.seq ?? Infinity) < next.seq) this.#removeFirst();
    this.#writeCursor();
  }

  close(): void {
    this.#closed = true;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** Drops the oldest segments while the backlog is over the cap; returns how many events went. */
  #trim(): number {
    let dropped = 0;
    while (this.#backlog > this.#maxBacklog && this.#segments.length > 1) {
      const first = this.#segments[0] as Segment;
      const left = first.lines - (first.seq === this.#cursor.seq ? this.#cursor.line : 0);
      dropped += left;
      this.#backlog -= left;
      const next = this.#segments[1] as Segment;
      this.#cursor = { seq: next.seq, offset: 0, line: 0 };
      this.#removeFirst();
    }
    if (dropped > 0) this.#writeCursor();
    return dropped;
  }

  #between(from: Cursor, to: Cursor): number {
    if (from.seq === to.seq) return to.line - from.line;
    let n = 0;
    for (const s of this.#segments) {
      if (s.seq === from.seq) n += s.lines - from.line;
      else if (s.seq > from.seq && s.seq < to.seq) n += s.lines;
      else if (s.seq === to.seq) n += to.line;
    }
    return n;
  }

  #rotate(): Segment {
    if (this.#fd !== undefined) closeSync(this.#fd);
    const seq = (this.#segments.at(-1)?.seq ?? this.#cursor.seq - 1) + 1;
    this.#fd = openSync(this.#file(seq), 'a', PRIVATE_FILE);
    const segment = { seq, lines: 0, bytes: 0 };
    this.#segments.push(segment);
    return segment;
  }

  #removeFirst(): void {
    const first = this.#segments.shift();
    if (!first) return;
    if (this.#segments.length === 0 && this.#fd !== undefined) {
      closeSync(this.#fd);
      this.#fd = undefined;
    }
    rmSync(this.#file(first.seq), { force: true });
  }

  /** A segment's complete lines; the last one's torn tail (a write cut by a crash) is cut off. */
  #scan(seq: number, last: boolean): Segment {
    const file = this.#file(seq);
    const bytes = readFileSync(file);
    const end = bytes.lastIndexOf(10) + 1;
    if (end < bytes.length) {
      const fd = openSync(file, 'r+');
      ftruncateSync(fd, end);
      closeSync(fd);
    }
    let lines = 0;
    for (let i = bytes.indexOf(10); i !== -1 && i < end; i = bytes.indexOf(10, i + 1)) lines++;
    if (last) this.#fd = openSync(file, 'a', PRIVATE_FILE);
    return { seq, lines, bytes: end };
  }

  #readCursor(): Cursor {
    try {
      const c = JSON.parse(readFileSync(path.join(this.dir, 'cursor'), 'utf8')) as Cursor;
      if ([c.seq, c.offset, c.line].every((n) => Number.isInteger(n) && n >= 0)) return c;
    } catch {
      // None yet, or unreadable: from the oldest segment (sending some twice beats losing them).
    }
    return { seq: 0, offset: 0, line: 0 };
  }

  // Not fsynced: after a machine crash an older cursor sends some events twice, never loses one.
  #writeCursor(): void {
    const file = path.join(this.dir, 'cursor');
    writeFileSync(`${file}.new`, JSON.stringify(this.#cursor), { mode: PRIVATE_FILE });
    renameSync(`${file}.new`, file);
  }

  #file(seq: number): string {
    return path.join(this.dir, name(seq));
  }
}

async function readAt(file: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function isJsonObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return !!value && typeof value === 'object' && !Array.isArray(value);
  } catch {
    return false;
  }
}
