// The journal: where a message accepted in memory becomes durable. Messages arriving together are
// appended to one segment file and share one fsync (group commit), and no file is created or deleted per
// message. Both mattered when measured: two files per message cost two fsyncs that cannot be shared, and
// creating and deleting inodes at hundreds per second made ext4's inode allocator the relay's hottest code.
//
// A segment is a run of records: a message (its queued state and bytes), or a "done" marker for a message
// that left the journal (delivered, deleted, or moved to its own files in queue/ because it needs a
// retry). A marker is written but not fsynced: lost in a machine crash, it costs a duplicate, never a
// loss. Segments are removed oldest first once every message in them is done; a message still here
// after two newer segments filled is moved to queue/ so it does not hold old segments on disk.
// The records' format: journal-format.ts.
//
// A segment's file is kept longer than its records, by zeros written with the commit that crossed its
// end, so most commits write inside the file instead of growing it: ext4's fsync then has no new size or
// new blocks to put in its own journal first. Measured on this machine's volume, alternating, a record
// and an fsync per commit: 1.5 KB records 100-107 us a commit on average against 142-173 appending, 21 KB
// records 125-142 against 168-190, and a third less CPU. Growing the file without writing (a hole) helped
// only records smaller than a block. The price: those zeros are written too, and the commit that writes
// them waits for them. A clean close cuts the file back to its records; after a crash the parser reads
// the zeros as the end, as it reads any end.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PRIVATE_DIR, PRIVATE_FILE } from '../private-files.js';
import { lengthOf } from '../message-bytes.js';
import type { MessageBytes } from '../types.js';
import type { QueuedMessage } from './entry.js';
import { InlineSync } from './inline-sync.js';
import { type JournaledMessage, KIND_DONE, KIND_MESSAGE, parseSegment, readRange, record, SEGMENT_BYTES, segmentFiles } from './journal-format.js';

export { type JournaledMessage, type JournalPlace, readJournal, readJournalBytes } from './journal-format.js';

async function syncDirectory(dir: string, sync: JournalOptions['sync']): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await sync(handle, false);
  } finally {
    await handle.close();
  }
}

/** How far past its records a segment's file is grown at a time: the larger, the longer that commit waits. */
const GROW_BYTES = 256 * 1024;
const ZEROS = Buffer.alloc(GROW_BYTES);

interface SegmentFile {
  readonly path: string;
  readonly handle: fsp.FileHandle;
  /** Where its records end: appends go here. */
  size: number;
  /** The file's length: records, then zeros. */
  length: number;
  /** Messages in this segment not yet done. */
  live: number;
}

interface QueuedWrite {
  readonly chunks: Buffer[];
  readonly message?: { readonly entry: QueuedMessage; readonly length: number; resolve(): void; reject(err: unknown): void };
}

export interface JournalOptions {
  readonly fsync: boolean;
  /** fsync: on this thread when `inline` (a blocking call), else in the thread pool. */
  readonly sync: (file: fsp.FileHandle, inline: boolean) => Promise<void>;
  /**
   * True while nobody else waits on this thread: one client session, none beside it to group its commit
   * with or to hold up. Then a fast disk's fsync is made inline (inline-sync.ts).
   */
  readonly alone?: () => boolean;
  /** Where a new segment starts (tests make it small). */
  readonly segmentBytes?: number;
  /** Called with messages that have sat in old segments too long: the spool gives them files of their own. */
  readonly onStale?: (ids: string[]) => void;
}

export class Journal {
  readonly dir: string;
  readonly #options: JournalOptions;
  readonly #messages = new Map<string, { entry: QueuedMessage; segment: SegmentFile; offset: number; length: number }>();
  /** Oldest first; the last one is where appends go. */
  readonly #segments: SegmentFile[] = [];
  #nextSeq = 1;
  #pending: QueuedWrite[] = [];
  #writing: Promise<void> | undefined;
  /** The removal of finished segments under way, if any (close waits for it). */
  #removing: Promise<void> | undefined;
  /** After a failed write the segment's end is unknown: the next write starts a new one. */
  #broken = false;
  readonly #inline = new InlineSync();

  constructor(dir: string, options: JournalOptions) {
    this.dir = dir;
    this.#options = options;
  }

  /** Opens the segments a previous run left and returns the messages in them that are not done. */
  async open(): Promise<{ recovered: QueuedMessage[]; discarded: { path: string; bytes: number }[] }> {
    await fsp.mkdir(this.dir, { recursive: true, mode: PRIVATE_DIR });
    const discarded: { path: string; bytes: number }[] = [];
    const done = new Set<string>();
    const found: JournaledMessage[] = [];
    for (const file of await segmentFiles(this.dir)) {
      const handle = await fsp.open(file, 'r+');
      const bytes = await handle.readFile();
      const parsed = parseSegment(bytes, file);
      if (parsed.discarded > 0) discarded.push({ path: file, bytes: parsed.discarded });
      this.#segments.push({ path: file, handle, size: bytes.length, length: bytes.length, live: 0 });
      found.push(...parsed.messages);
      for (const id of parsed.done) done.add(id);
      this.#nextSeq = Number(path.basename(file, '.log')) + 1;
    }
    const bySegment = new Map(this.#segments.map((s) => [s.path, s]));
    for (const m of found) {
      const segment = bySegment.get(m.segment);
      if (done.has(m.entry.id) || !segment) continue;
      this.#messages.set(m.entry.id, { entry: m.entry, segment, offset: m.offset, length: m.length });
      segment.live++;
    }
    // Appends never go after a torn tail: the first write of this run starts a new segment.
    this.#broken = this.#segments.length > 0;
    await this.#removeFinishedSegments();
    return { recovered: [...this.#messages.values()].map((m) => m.entry), discarded };
  }

  /** Appends a message; resolves once it is on disk (fsynced, shared with the messages written with it). */
  append(entry: QueuedMessage, bytes: MessageBytes): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ chunks: record(KIND_MESSAGE, JSON.stringify(entry), bytes), message: { entry, length: lengthOf(bytes), resolve, reject } });
      this.#write();
    });
  }

  has(id: string): boolean {
    return this.#messages.has(id);
  }

  entry(id: string): QueuedMessage | undefined {
    return this.#messages.get(id)?.entry;
  }

  /** The message's bytes, read back from its segment. */
  async bytes(id: string): Promise<Buffer | undefined> {
    const m = this.#messages.get(id);
    return m && readRange(m.segment.handle, { segment: m.segment.path, offset: m.offset, length: m.length });
  }

  /** The message left the journal (delivered, deleted, or now in files of its own). */
  done(id: string): void {
    const segment = this.#forget(id);
    if (!segment) return;
    this.#pending.push({ chunks: record(KIND_DONE, id) });
    this.#write();
    if (segment.live === 0) this.#removing = this.#removeFinishedSegments();
  }

  /** Waits for pending writes and closes the segments. */
  async close(): Promise<void> {
    while (this.#writing) await this.#writing;
    // A removal under way finishes first: a stop must not leave a finished segment behind half removed.
    await this.#removing;
    for (const s of this.#segments.splice(0)) {
      // The zeros go: a stopped relay leaves each segment exactly its records.
      if (s.length > s.size) await s.handle.truncate(s.size).catch(() => {});
      await s.handle.close().catch(() => {});
    }
  }

  /** Takes a message out of the index; returns the segment it was in. */
  #forget(id: string): SegmentFile | undefined {
    const m = this.#messages.get(id);
    if (!m) return undefined;
    this.#messages.delete(id);
    m.segment.live--;
    return m.segment;
  }

  /** One writer: whatever queued up while the previous write ran goes out in one writev and one fsync. */
  #write(): void {
    if (this.#writing || this.#pending.length === 0) return;
    this.#writing = this.#writeBatch(this.#pending.splice(0)).finally(() => {
      this.#writing = undefined;
      this.#write();
    });
  }

  async #writeBatch(batch: QueuedWrite[]): Promise<void> {
    const messages = batch.flatMap((p) => (p.message ? [p.message] : []));
    try {
      const segment = await this.#segmentForWrite();
      const start = segment.size;
      const chunks = batch.flatMap((p) => p.chunks);
      const total = chunks.reduce((n, c) => n + c.length, 0);
      // Past the file's end: zeros follow the records in the same write, for the commits after this one.
      const grow = start + total > segment.length;
      // Into the page cache at once, on this thread: a thread-pool job costs more (a hand-off each way)
      // than the copy. Only the fsync, which waits for the disk, goes to the pool.
      const bytesWritten = fs.writevSync(segment.handle.fd, grow ? [...chunks, ZEROS] : chunks, start);
      if (bytesWritten !== total + (grow ? GROW_BYTES : 0)) throw new Error(`journal ${segment.path}: short write`);
      if (grow) segment.length = start + total + GROW_BYTES;
      if (messages.length > 0 && this.#options.fsync) await this.#sync(segment.handle);
      segment.size += total;
      let at = start;
      for (const p of batch) {
        const length = p.chunks.reduce((n, c) => n + c.length, 0);
        if (p.message) {
          this.#messages.set(p.message.entry.id, { entry: p.message.entry, segment, offset: at + length - p.message.length, length: p.message.length });
          segment.live++;
        }
        at += length;
      }
      for (const m of messages) m.resolve();
    } catch (err) {
      this.#broken = true;
      for (const m of messages) m.reject(err);
      // Refused messages may have reached the disk anyway: marked done, a restart does not send them.
      for (const m of messages) this.#pending.push({ chunks: record(KIND_DONE, m.entry.id) });
    }
  }

  async #sync(handle: fsp.FileHandle): Promise<void> {
    const inline = this.#inline.chooses(this.#options.alone?.() === true);
    const started = performance.now();
    await this.#options.sync(handle, inline);
    this.#inline.took(performance.now() - started);
  }

  async #segmentForWrite(): Promise<SegmentFile> {
    const current = this.#segments.at(-1);
    if (current && !this.#broken && current.size < (this.#options.segmentBytes ?? SEGMENT_BYTES)) return current;
    const file = path.join(this.dir, `${String(this.#nextSeq).padStart(12, '0')}.log`);
    const handle = await fsp.open(file, 'wx+', PRIVATE_FILE);
    this.#nextSeq++;
    this.#broken = false;
    const segment: SegmentFile = { path: file, handle, size: 0, length: 0, live: 0 };
    this.#segments.push(segment);
    // The new name must be on disk before a message in it is acknowledged.
    if (this.#options.fsync) await syncDirectory(this.dir, this.#options.sync);
    await this.#removeFinishedSegments();
    // Messages two segments back are old: they move out so the segments behind them can go.
    const old = new Set(this.#segments.slice(0, -2));
    const stale = [...this.#messages].filter(([, m]) => old.has(m.segment)).map(([id]) => id);
    if (stale.length > 0) this.#options.onStale?.(stale);
    return segment;
  }

  /** Segments are removed oldest first, so a done marker never outlives the segment of its message. */
  async #removeFinishedSegments(): Promise<void> {
    while (this.#segments.length > 1 && this.#segments[0]?.live === 0) {
      const segment = this.#segments.shift();
      if (!segment) break;
      await segment.handle.close().catch(() => {});
      await fsp.unlink(segment.path).catch(() => {});
    }
  }
}
