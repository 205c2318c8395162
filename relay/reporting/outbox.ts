// A webhook's outbox: delivery events written beside the spool, read back in batches in the order they
// were written, and forgotten once the webhook has taken them. On disk: segments of JSON lines
// (<seq>.jsonl) and a cursor (the first event not yet taken). Appends are synchronous writes, made before
// the client hears 250 (a killed process loses none), and a batch is fsynced before it is sent, so what
// the platform was told is on disk. A receiver that is down for long fills it up to maxBacklogEvents;
// past that the outbox is compacted: single events are dropped, oldest first, from the tenants that hold
// the most of the backlog (so one chatty tenant loses its own, not everyone's), down to 90 % of the cap.
// Events the webhook refused for good are dead-lettered (dead.jsonl, kept, counted); a replay file the
// command leaves (replay-*.jsonl) is appended back by the sender.
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
  /** Their size in bytes (UTF-8), the commas between them not counted. */
  readonly bytes: number;
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
    let taken = 0;
    for (const file of readdirSync(this.dir).filter((f) => /^replay-[\w.-]+\.jsonl$/.test(f)).sort()) {
      const full = path.join(this.dir, file);
      const events = readFileSync(full, 'utf8').split('\n').filter(isJsonObject);
      this.append(events);
      rmSync(full, { force: true });
      taken += events.length;
    }
    return taken;
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

const DEAD = 'dead.jsonl';

/**
 * An outbox as the commands see it, read without writing (a live relay owns it): events waiting, and
 * events dead-lettered.
 */
export function outboxState(dir: string): { readonly backlog: number; readonly deadLettered: number } {
  let cursor = { seq: 0, line: 0 };
  try {
    cursor = JSON.parse(readFileSync(path.join(dir, 'cursor'), 'utf8')) as { seq: number; line: number };
  } catch {
    // No cursor: from the oldest segment.
  }
  let backlog = 0;
  for (const f of readdirSync(dir)) {
    const seq = Number(/^(\d{12})\.jsonl$/.exec(f)?.[1] ?? Number.NaN);
    if (!(seq >= cursor.seq)) continue;
    backlog += countLines(path.join(dir, f)) - (seq === cursor.seq ? cursor.line : 0);
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

function countLines(file: string): number {
  try {
    const bytes = readFileSync(file);
    let n = 0;
    for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, i + 1)) n++;
    return n;
  } catch {
    return 0;
  }
}

/** The tenant an event is about ("" for mail of no tenant), or undefined for a line that is not an event. */
function tenantOf(text: string): string | undefined {
  try {
    const value = JSON.parse(text) as { tenant?: unknown };
    return value && typeof value === 'object' ? (typeof value.tenant === 'string' ? value.tenant : '') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How many events each tenant gives up so that `count` go in all: always from the tenant holding the most
 * (water-filling), so the backlog's largest holders are cut down to the others' level first.
 */
export function fairDrops(tenants: readonly string[], count: number): Map<string, number> {
  const held = new Map<string, number>();
  for (const t of tenants) held.set(t, (held.get(t) ?? 0) + 1);
  const drops = new Map<string, number>();
  if (count <= 0) return drops;
  const sorted = [...held].sort((a, b) => b[1] - a[1]);
  let left = Math.min(count, tenants.length);
  // Lower the level step by step: every tenant above the next level down gives up what is above it.
  for (let i = 0; i < sorted.length && left > 0; i++) {
    const level = sorted[i + 1]?.[1] ?? 0;
    const above = sorted.slice(0, i + 1);
    const room = above.reduce((n, [, c]) => n + (c - level), 0);
    if (room < left) {
      for (const entry of above) entry[1] = level;
      left -= room;
      continue;
    }
    // The last step: take what is left evenly from those above, the largest first for the remainder.
    const each = Math.floor(left / above.length);
    let extra = left - each * above.length;
    for (const entry of above) {
      const from = entry[1];
      entry[1] = Math.max(level, from - each - (extra > 0 ? 1 : 0));
      if (extra > 0) extra--;
    }
    left = 0;
  }
  for (const [tenant, now] of sorted) {
    const gone = (held.get(tenant) ?? 0) - now;
    if (gone > 0) drops.set(tenant, gone);
  }
  return drops;
}

function isJsonObject(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return !!value && typeof value === 'object' && !Array.isArray(value);
  } catch {
    return false;
  }
}
