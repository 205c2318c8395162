// The spool: durable state of queued messages behind one narrow interface (commit, read, update, remove,
// fail, list). A message accepted in memory is committed to the journal (journal.ts), appended with the
// others that arrive with it under one fsync; most never leave it (delivered at the first attempt, they
// are marked done). A message too large to hold in memory, and one that needs a retry (or sits too long
// in the journal), has files of its own instead (message-files.ts). Where each lives on disk:
// spool-layout.ts. What a previous run left: recovery.ts.
import fs from 'node:fs/promises';
import type { Part } from '../files.js';
import { isInMemory, lengthOf, partsOf } from '../message-bytes.js';
import { readHeaderBlock, splitChunks, splitMessage } from '../message/split.js';
import type { MessageBytes, MessageSource } from '../types.js';
import { isQueuedMessage, type QueuedMessage } from './entry.js';
import { Journal, type JournalPlace, readJournal, readJournalBytes } from './journal.js';
import { MessageFiles, realIo, type SpoolIo } from './message-files.js';
import { type Recovered, recoverSpool } from './recovery.js';
import { SpoolLayout } from './spool-layout.js';

/**
 * Stale messages moving out of the journal at once (#moveStale) while the relay takes mail: one. Each move
 * fsyncs two files, and those fsyncs queue on the same disk as the journal's, which every client's 250
 * waits for. A relay moving 7,840 messages out (bench BENCH_BACKLOG_SHAPE=waiting) accepted 445-571
 * msgs/s of our client's load with 16 at a time, 1,045-1,177 with one; of smtp-source's, 709-914 against
 * 771-1,136 (medians about 815 and 940). One at a time moves 400-540 a second here, 16 at a time
 * 1,000-1,200: once no message has been committed for IDLE_AFTER_MS, nobody waits on the disk, and the
 * moves go STALE_MOVES_WHEN_IDLE at a time. Not "no session open": an app with a connection per message
 * has none open between two of them, many times a second.
 */
const STALE_MOVES_AT_ONCE = 1;
const STALE_MOVES_WHEN_IDLE = 16;
const IDLE_AFTER_MS = 1_000;

export type { SpoolIo } from './message-files.js';

export interface SpoolOptions {
  /** Off only for throwaway relays: a 250 then means "in the page cache", not "on disk". */
  readonly fsync?: boolean;
  readonly io?: SpoolIo;
  readonly journalSegmentBytes?: number;
  /** True while one client session is all this process serves: the journal may fsync inline (inline-sync.ts). */
  readonly alone?: () => boolean;
}

/** A queued message as `tenant-relay queue` sees it, read without a running relay's help. */
export interface QueueListing {
  readonly id: string;
  readonly area: 'queue' | 'failed';
  readonly entry: QueuedMessage;
  /** Set for a message still in the journal (accepted moments ago, or awaiting its first attempt). */
  readonly journal?: JournalPlace;
}

/** In memory (one buffer, or parts that are all buffers), or parts of which some are in files. */
function placed(message: MessageBytes | readonly Part[]): { readonly bytes: MessageBytes } | { readonly parts: readonly Part[] } {
  if (Buffer.isBuffer(message)) return { bytes: message };
  return message.every((p) => Buffer.isBuffer(p)) ? { bytes: message as readonly Buffer[] } : { parts: message };
}

export class Spool {
  readonly layout: SpoolLayout;
  readonly #journal: Journal;
  readonly #files: MessageFiles;
  /** Messages being moved from the journal to files of their own: what else touches them waits. */
  readonly #moving = new Map<string, Promise<void>>();
  /** Messages in old journal segments, waiting to move to files of their own (#moveStale). */
  readonly #stale = new Set<string>();
  #staleMoving = 0;
  /** performance.now() of the last commit: the relay is idle once it is IDLE_AFTER_MS old. */
  #committedAt = -Infinity;
  #closing = false;

  constructor(root: string, options: SpoolOptions = {}) {
    this.layout = new SpoolLayout(root);
    const fsync = options.fsync ?? true;
    const io = options.io ?? realIo;
    this.#files = new MessageFiles(this.layout, { fsync, io });
    this.#journal = new Journal(this.layout.journalDir, {
      fsync,
      sync: (file, inline) => io.fsync(file, inline),
      ...(options.alone ? { alone: options.alone } : {}),
      ...(options.journalSegmentBytes ? { segmentBytes: options.journalSegmentBytes } : {}),
      // Best effort: a message that fails to move stays in the journal, durable, and is tried again later.
      onStale: (ids) => {
        for (const id of ids) this.#stale.add(id);
        this.#moveStale();
      },
    });
  }

  /** At start: creates the folders and returns what a previous run left, ready to deliver. */
  open(): Promise<Recovered> {
    return recoverSpool(this.layout, this.#journal);
  }

  /**
   * Queues a message: bytes in memory (a buffer, or parts that are all buffers) go to the journal (one fsync shared with those that arrive with
   * them); parts (a large message: buffers and file ranges) to files of its own. Resolves with the entry
   * as committed (its size set) once it is on disk; on failure nothing is queued.
   */
  async commit(entry: Omit<QueuedMessage, 'size'>, message: MessageBytes | readonly Part[]): Promise<QueuedMessage> {
    this.#committedAt = performance.now();
    const place = placed(message);
    if ('bytes' in place) {
      const committed = { ...entry, size: lengthOf(place.bytes) };
      await this.#journal.append(committed, place.bytes);
      return committed;
    }
    const committed = { ...entry, size: await this.#files.writeMessage(entry.id, place.parts) };
    await this.#files.commit(committed);
    return committed;
  }

  /** The current state of a queued message, or undefined if it is gone (delivered, deleted). */
  async read(id: string): Promise<QueuedMessage | undefined> {
    await this.#moving.get(id)?.catch(() => {});
    return this.#journal.entry(id) ?? (await this.#files.read(id));
  }

  /** Replaces the state of a queued message (a journaled one gets files of its own first). */
  async update(entry: QueuedMessage): Promise<void> {
    if (this.#journal.has(entry.id) || this.#moving.has(entry.id)) return this.#moveOut(entry.id, entry);
    await this.#files.update(entry);
  }

  /** Delivered to every recipient (or deleted): the message leaves the spool. Not fsynced: see MessageFiles. */
  async remove(id: string): Promise<void> {
    await this.#moving.get(id)?.catch(() => {});
    if (this.#journal.has(id)) return this.#journal.done(id);
    await this.#files.remove(id);
  }

  /** Finished with failures: kept in failed/ for inspection. */
  async fail(entry: QueuedMessage): Promise<void> {
    if (this.#journal.has(entry.id) || this.#moving.has(entry.id)) await this.#moveOut(entry.id, entry);
    await this.#files.moveToFailed(entry);
  }

  /** The bytes an attempt sends: from the journal, or the path of the message file. */
  async source(id: string): Promise<MessageSource> {
    return (this.#journal.has(id) ? await this.#journal.bytes(id) : undefined) ?? { path: this.layout.message(id) };
  }

  /** The header block of a queued message (empty if it is gone). */
  async headerBlock(id: string): Promise<Buffer> {
    const source = await this.source(id);
    if (isInMemory(source)) return splitChunks(partsOf(source)).header;
    return (await readHeaderBlock(source.path)) ?? Buffer.alloc(0);
  }

  /**
   * What is queued (or failed), read from disk as another process sees it: `tenant-relay queue` runs
   * beside a live relay and never opens the journal for writing.
   */
  async list(area: 'queue' | 'failed' = 'queue'): Promise<QueueListing[]> {
    // The journal before the files: a message moving out writes its files, then leaves the journal, so
    // read in this order it is in one or the other (files first could miss one that moved in between).
    const journaled = area === 'queue' ? (await readJournal(this.layout.journalDir)).live : [];
    const names = await fs.readdir(this.layout.dir(area)).catch(() => [] as string[]);
    const listings: QueueListing[] = [];
    for (const name of names.sort()) {
      const file = SpoolLayout.parseQueueFile(name);
      if (file?.kind !== 'state') continue;
      try {
        const entry: unknown = JSON.parse(await fs.readFile(this.layout.state(file.id, area), 'utf8'));
        if (isQueuedMessage(entry)) listings.push({ id: entry.id, area, entry });
      } catch {
        // Being replaced right now, or damaged: the relay's own recovery deals with it.
      }
    }
    if (journaled.length > 0) {
      // Messages moved out of the journal may still be in it for a moment: their files are the newer state.
      const filed = new Set(listings.map((l) => l.id));
      for (const m of journaled) {
        if (!filed.has(m.entry.id)) listings.push({ id: m.entry.id, area, entry: m.entry, journal: { segment: m.segment, offset: m.offset, length: m.length } });
      }
      listings.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    }
    return listings;
  }

  /**
   * One message as list() shows it, without listing the rest: its state file in either area, else the
   * journal. For a timeline or an action on one message, whatever the size of the queue.
   */
  async find(id: string): Promise<QueueListing | undefined> {
    if (!/^[a-z0-9]{1,64}$/.test(id)) return undefined;
    const filed = await this.findFiled(id);
    if (filed) return filed;
    const m = (await readJournal(this.layout.journalDir)).live.find((l) => l.entry.id === id);
    if (m) return { id, area: 'queue', entry: m.entry, journal: { segment: m.segment, offset: m.offset, length: m.length } };
    // Not in the journal either: it may have moved out while we looked (files written, then the journal
    // marked), so its files are in place now.
    return this.findFiled(id);
  }

  /** One message by its state file alone (in `areas`), without the journal. */
  async findFiled(id: string, areas: readonly ('queue' | 'failed')[] = ['queue', 'failed']): Promise<QueueListing | undefined> {
    if (!/^[a-z0-9]{1,64}$/.test(id)) return undefined;
    for (const area of areas) {
      try {
        const entry: unknown = JSON.parse(await fs.readFile(this.layout.state(id, area), 'utf8'));
        if (isQueuedMessage(entry) && entry.id === id) return { id, area, entry };
      } catch {
        // Not in this area (or being replaced right now).
      }
    }
    return undefined;
  }

  /** The header block of a listed message, as `tenant-relay queue show` prints it. */
  async headerOf(listing: QueueListing): Promise<Buffer> {
    // A journaled message may move to files of its own (or be delivered) while it is looked at: its
    // segment, or its files, can be gone by the time they are read. Gone, it has no header to show.
    const journaled = listing.journal && (await readJournalBytes(listing.journal).catch(() => undefined));
    if (journaled) return splitMessage(journaled).header;
    return (await readHeaderBlock(this.layout.message(listing.id, listing.area)).catch(() => undefined)) ?? Buffer.alloc(0);
  }

  async freeBytes(): Promise<number> {
    const s = await fs.statfs(this.layout.root);
    return s.bavail * s.bsize;
  }

  /** Messages of old journal segments still to move to files of their own (the bench waits for none). */
  get movingOut(): number {
    return this.#stale.size + this.#staleMoving;
  }

  /** Waits for writes in progress and closes the files kept open (the relay's shutdown). */
  async close(): Promise<void> {
    // Stale messages not moved yet stay in the journal, where the next start finds them.
    this.#closing = true;
    this.#stale.clear();
    await Promise.allSettled(this.#moving.values());
    await this.#journal.close();
    await this.#files.close();
  }

  /**
   * Moves the stale messages out, a few at a time: STALE_MOVES_AT_ONCE while mail comes in, else
   * STALE_MOVES_WHEN_IDLE (decided again as each move ends). All at once, a backlog opened a file for each
   * of them together: 40,000 deferred messages held 13,000 descriptors open, 100,000 ran into the
   * process's limit (EMFILE), and every other file the relay opened then failed too.
   */
  #moveStale(): void {
    const atOnce = performance.now() - this.#committedAt >= IDLE_AFTER_MS ? STALE_MOVES_WHEN_IDLE : STALE_MOVES_AT_ONCE;
    while (!this.#closing && this.#staleMoving < atOnce) {
      const id = this.#stale.values().next().value;
      if (id === undefined) return;
      this.#stale.delete(id);
      this.#staleMoving++;
      void this.#moveOut(id)
        .catch(() => {})
        .finally(() => {
          this.#staleMoving--;
          this.#moveStale();
        });
    }
  }

  /**
   * A journaled message gets files of its own in queue/ (its state: `entry`, else as journaled), then
   * leaves the journal. Done before its state changes, and for messages that sit in old segments.
   */
  #moveOut(id: string, entry?: QueuedMessage): Promise<void> {
    const running = this.#moving.get(id);
    if (running) return running.then(() => (entry ? this.#files.update(entry) : undefined));
    const journaled = this.#journal.entry(id);
    if (!journaled) return entry ? this.#files.update(entry) : Promise.resolve();
    const move = (async () => {
      const bytes = await this.#journal.bytes(id);
      if (!bytes) return;
      // A move cut short by a crash leaves an .eml: the journal still has the message, so start over.
      await this.#files.remove(id);
      await this.#files.writeMessage(id, [bytes]);
      await this.#files.update(entry ?? journaled);
      this.#journal.done(id);
    })();
    this.#moving.set(id, move);
    return move.finally(() => this.#moving.delete(id));
  }
}
