// A webhook's outbox: delivery events written beside the spool, read back in batches in the order they
// were written, and forgotten once the webhook has taken them. On disk: segments of JSON lines
// (<seq>.jsonl) and a cursor (the first event not yet taken). Appends are synchronous writes, made before
// the client hears 250 (a killed process loses none), and a batch is fsynced before it is sent, so what
// the platform was told is on disk. A receiver that is down for long fills it up to maxBacklogEvents;
// past that the outbox is compacted: single events are dropped, oldest first, from the tenants that hold
// the most of the backlog (so one chatty tenant loses its own, not everyone's), down to 90 % of the cap.
// Events the webhook refused for good are dead-lettered (dead.jsonl, kept, counted); a replay file the
// command leaves (replay-*.jsonl) is appended back by the sender.
import { closeSync, fdatasync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { PRIVATE_DIR, PRIVATE_FILE } from '../private-files.js';
import { fairDrops, tenantOf } from './fair-drops.js';
import { type Cursor, countLines, DEAD, readAt, readCursor, scanSegment, segmentName, segmentsIn, writeCursor } from './outbox-files.js';

interface Segment {
  readonly seq: number;
  /** Complete lines in the file. */
  lines: number;
  bytes: number;
}

export interface Batch {
  /** The events, each a JSON text. */
  readonly events: readonly string[];
  /** Their size in bytes (UTF-8), the commas between them not counted. */
  readonly bytes: number;
  /** Where the cursor goes once the webhook has taken them. */
  readonly next: Cursor;
  /** Events skipped while reading: lines a crash left unreadable. */
  readonly unreadable: number;
}

const SEGMENT_MAX_BYTES = 4 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;

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
    this.#cursor = readCursor(dir);
    const seqs = segmentsIn(dir);
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
   * Up to `max` events and about `maxBytes` (never fewer than one event) from the cursor, fsynced first;
   * undefined when there are none. The batch counts as taken only when ack() says so: a batch read again
   * after a failure is the same events.
   */
  async read(max: number, maxBytes = Number.POSITIVE_INFINITY): Promise<Batch | undefined> {
    if (this.#backlog === 0) return undefined;
    if (this.#unsynced && this.#fd !== undefined) {
      this.#unsynced = false;
      const fd = this.#fd;
      await new Promise<void>((resolve) => fdatasync(fd, () => resolve()));
    }
    const events: string[] = [];
    let bytes = 0;
    let unreadable = 0;
    let { seq, offset, line } = this.#cursor;
    while (events.length < max && bytes < maxBytes) {
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
        if (events.length > 0 && bytes + (end - start) > maxBytes) break;
        const text = chunk.toString('utf8', start, end);
        if (isJsonObject(text)) {
          events.push(text);
          bytes += end - start;
        } else unreadable++;
        offset += end - start + 1;
        start = end + 1;
        line++;
      }
      if (start === 0) break; // a line longer than a chunk (never written by append()), or the byte cap
    }
    if (events.length === 0 && unreadable === 0) return undefined;
    return { events, bytes, next: { seq, offset, line }, unreadable };
  }

  /** Events the webhook refused for good: kept in dead.jsonl (until replayed), out of the backlog. */
  deadLetter(events: readonly string[]): void {
    if (events.length === 0) return;
    const fd = openSync(path.join(this.dir, DEAD), 'a', PRIVATE_FILE);
    try {
      writeSync(fd, `${events.join('\n')}\n`);
    } finally {
      closeSync(fd);
    }
  }

  /** Events in dead.jsonl. */
  get deadLettered(): number {
    return countLines(path.join(this.dir, DEAD));
  }

  /**
   * Appends the events of the replay files `tenant-relay webhooks replay` left (dead letters sent again),
   * and removes the files. Returns how many were appended.
   */
  takeReplays(): number {
    let replayed = 0;
    for (const file of readdirSync(this.dir).filter((f) => /^replay-[\w.-]+\.jsonl$/.test(f)).sort()) {
      const full = path.join(this.dir, file);
      const events = readFileSync(full, 'utf8').split('\n').filter(isJsonObject);
      this.append(events);
      rmSync(full, { force: true });
      replayed += events.length;
    }
    return replayed;
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

  /**
   * Past the cap, the unsent events are written again without the ones to drop: single events, oldest
   * first, from the tenants holding the most of the backlog, down to 90 % of the cap (so the rewrite is
   * paid once per tenth of the cap, not per event). A batch out at the time is sent again (at least once).
   */
  #trim(): number {
    if (this.#backlog <= this.#maxBacklog) return 0;
    const unsent: { text: string; tenant: string }[] = [];
    for (const segment of this.#segments) {
      const bytes = readFileSync(this.#file(segment.seq));
      let start = segment.seq === this.#cursor.seq ? this.#cursor.offset : 0;
      for (let end = bytes.indexOf(10, start); end !== -1; end = bytes.indexOf(10, start)) {
        const text = bytes.toString('utf8', start, end);
        start = end + 1;
        const tenant = tenantOf(text);
        if (tenant !== undefined) unsent.push({ text, tenant });
      }
    }
    const keep = Math.floor(this.#maxBacklog * 0.9);
    const drops = fairDrops(unsent.map((e) => e.tenant), Math.max(0, unsent.length - keep));
    const kept = unsent.filter((e) => {
      const owed = drops.get(e.tenant) ?? 0;
      if (owed === 0) return true;
      drops.set(e.tenant, owed - 1);
      return false;
    });
    // The survivors in new segments, then the cursor at the first of them, then the old ones removed.
    const old = this.#segments.splice(0);
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    const firstNew = (old.at(-1)?.seq ?? this.#cursor.seq) + 1;
    this.#cursor = { seq: firstNew, offset: 0, line: 0 };
    this.#backlog = 0;
    for (let i = 0; i < kept.length; i += this.#segmentLines) this.#writeSegment(kept.slice(i, i + this.#segmentLines).map((e) => e.text));
    this.#writeCursor();
    for (const s of old) rmSync(this.#file(s.seq), { force: true });
    return unsent.length - kept.length;
  }

  #writeSegment(events: readonly string[]): void {
    const segment = this.#rotate();
    const text = `${events.join('\n')}\n`;
    segment.bytes += writeSync(this.#fd as number, text);
    segment.lines += events.length;
    this.#backlog += events.length;
    this.#unsynced = true;
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

  #scan(seq: number, last: boolean): Segment {
    const file = this.#file(seq);
    const segment = { seq, ...scanSegment(file) };
    if (last) this.#fd = openSync(file, 'a', PRIVATE_FILE);
    return segment;
  }

  #writeCursor(): void {
    writeCursor(this.dir, this.#cursor);
  }

  #file(seq: number): string {
    return path.join(this.dir, segmentName(seq));
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
