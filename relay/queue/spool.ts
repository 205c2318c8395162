// The spool on disk. A message accepted in memory goes to the journal (journal.ts): appended with the
// others that arrive with it, one fsync for all of them. Most messages never leave it: delivered at the
// first attempt, they are marked done. A message that needs a retry (or sits too long in the journal),
// and any message too large to hold in memory, is two files in queue/ instead: <id>.eml (the bytes to
// send, immutable, written there directly and fsynced) and <id>.json (envelope and per-recipient state,
// written in tmp/, fsynced, renamed in). Such a message exists once its .json is in queue/ and that
// directory is fsynced; only then may the client hear 250. An .eml without its .json is an unfinished
// commit, cleared at start.
//
//   journal/  accepted, awaiting or in the first attempt: <seq>.log segments
//   tmp/      being written (state files, large incoming messages): never acknowledged, cleared at start
//   queue/    accepted, waiting for a retry or being delivered; <id>.retry / <id>.delete are requests from the CLI
//   failed/   finished with at least one recipient failed for good, kept for inspection
//   corrupt/  entries found unreadable at start, moved aside
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { readHeaderBlock, splitMessage } from '../message/split.js';
import { releaseChunks } from '../message/chunk-release.js';
import { isQueuedMessage, type QueuedMessage } from './entry.js';
import { Journal } from './journal.js';

/** The file operations whose failure the relay must survive; tests replace them to inject faults. */
export interface SpoolIo {
  fsync(file: fs.FileHandle): Promise<void>;
  rename(from: string, to: string): Promise<void>;
}

const realIo: SpoolIo = {
  fsync: (file) => file.sync(),
  rename: (from, to) => fs.rename(from, to),
};

/** Bytes of a file from `start` to its end: a part that writeMessage copies without allocating per chunk. */
export interface FileRange {
  readonly path: string;
  readonly start: number;
}

type Part = Buffer | AsyncIterable<Buffer> | FileRange;

/** What a client sent: in memory, or (past the memory limit) in a temp file; or the disk failed. */
export type Received = { readonly kind: 'memory'; readonly bytes: Buffer } | { readonly kind: 'file'; readonly path: string } | { readonly kind: 'failed'; readonly error: unknown };

export interface ScanReport {
  readonly entries: QueuedMessage[];
  readonly corrupt: { readonly id: string; readonly reason: string }[];
  /** Journal segments that ended in a torn write (never acknowledged): bytes ignored. */
  readonly discarded: { readonly path: string; readonly bytes: number }[];
}

/** Where the bytes of a queued message are read from for an attempt. */
export type MessageSource = Buffer | { readonly path: string };

export class Spool {
  readonly dir: string;
  readonly #fsync: boolean;
  readonly #io: SpoolIo;
  readonly #idTag = randomBytes(4).toString('hex');
  #idCounter = 0;
  #dirSyncWaiting: Promise<void> | undefined;
  #queueDirHandle: Promise<fs.FileHandle> | undefined;
  #dirSyncRunning: Promise<void> | undefined;
  readonly #journal: Journal;
  /** Messages being moved from the journal to files of their own: what else touches them waits. */
  readonly #moving = new Map<string, Promise<void>>();

  constructor(dir: string, options: { fsync?: boolean; io?: SpoolIo; journalSegmentBytes?: number } = {}) {
    this.dir = dir;
    this.#fsync = options.fsync ?? true;
    this.#io = options.io ?? realIo;
    this.#journal = new Journal(path.join(dir, 'journal'), {
      fsync: this.#fsync,
      sync: (file) => this.#io.fsync(file),
      ...(options.journalSegmentBytes ? { segmentBytes: options.journalSegmentBytes } : {}),
      // Best effort: a message that fails to move stays in the journal, durable, and is tried again later.
      onStale: (ids) => {
        for (const id of ids) void this.#moveOut(id).catch(() => {});
      },
    });
  }

  path(area: 'tmp' | 'queue' | 'failed' | 'corrupt' | 'journal', file: string): string {
    return path.join(this.dir, area, file);
  }

  async init(): Promise<void> {
    for (const area of ['tmp', 'queue', 'failed', 'corrupt', 'journal']) await fs.mkdir(path.join(this.dir, area), { recursive: true });
  }

  /**
   * Queues a message held in memory: its state and bytes go to the journal. Resolves when they are on
   * disk; on failure nothing is queued.
   */
  async commitInMemory(entry: QueuedMessage, bytes: Buffer): Promise<void> {
    await this.#journal.append(entry, bytes);
  }

  /** The bytes an attempt sends: from the journal, or the path of the .eml. */
  async messageSource(id: string): Promise<MessageSource> {
    return (this.#journal.has(id) ? await this.#journal.bytes(id) : undefined) ?? { path: this.messagePath(id) };
  }

  /** The header block of a queued message (empty if it is gone). */
  async headerBlock(id: string): Promise<Buffer> {
    const source = await this.messageSource(id);
    if (Buffer.isBuffer(source)) return splitMessage(source).header;
    return (await readHeaderBlock(source.path)) ?? Buffer.alloc(0);
  }

  /**
   * A journaled message gets files of its own in queue/ (its state: `entry`, else as journaled), then
   * leaves the journal. Done before its state changes, and for messages that sit in old segments.
   */
  #moveOut(id: string, entry?: QueuedMessage): Promise<void> {
    const running = this.#moving.get(id);
    if (running) return running.then(() => (entry ? this.update(entry) : undefined));
    const journaled = this.#journal.entry(id);
    if (!journaled) return entry ? this.update(entry) : Promise.resolve();
    const move = (async () => {
      const bytes = await this.#journal.bytes(id);
      if (!bytes) return;
      // A move cut short by a crash leaves an .eml: the journal still has the message, so start over.
      await unlinkIfThere(this.messagePath(id));
      await this.writeMessage(id, [bytes]);
      await this.#replaceState(entry ?? journaled);
      this.#journal.done(id);
    })();
    this.#moving.set(id, move);
    return move.finally(() => this.#moving.delete(id));
  }

  newId(): string {
    // Time first, so that ids sort roughly by arrival; then this process's random tag and a counter, so
    // ids never collide across processes or restarts (a getrandom per message costs ~40 µs in a sandbox).
    return `${Date.now().toString(36)}${this.#idTag}${(this.#idCounter++ % 1_679_616).toString(36).padStart(4, '0')}`;
  }

  async freeBytes(): Promise<number> {
    const s = await fs.statfs(this.dir);
    return s.bavail * s.bsize;
  }

  /**
   * Reads what a client sends: kept in memory up to `keepInMemory` bytes, past that the whole message
   * goes to tmp/<id>.raw, so a large message costs a bounded amount of memory. A disk error does not stop
   * the reading: the client must reach its final dot to hear the 451. Rejects if `data` fails (the
   * client left), with any temp file removed.
   */
  async receive(id: string, data: AsyncIterable<Buffer>, keepInMemory: number): Promise<Received> {
    const chunks: Buffer[] = [];
    let held = 0;
    let file: fs.FileHandle | undefined;
    let diskError: unknown;
    const rawPath = this.path('tmp', `${id}.raw`);
    try {
      for await (const chunk of data) {
        if (diskError) continue;
        if (!file && held + chunk.length <= keepInMemory) {
          chunks.push(chunk);
          held += chunk.length;
          continue;
        }
        try {
          if (!file) {
            file = await fs.open(rawPath, 'wx');
            await file.writev(chunks);
            chunks.length = 0;
          }
          await file.write(chunk);
          releaseChunks(chunk.length);
        } catch (err) {
          diskError = err;
        }
      }
    } catch (err) {
      await file?.close().catch(() => {});
      if (file) await unlinkIfThere(rawPath);
      throw err;
    }
    await file?.close().catch(() => {});
    if (diskError) return { kind: 'failed', error: diskError };
    return file ? { kind: 'file', path: rawPath } : { kind: 'memory', bytes: Buffer.concat(chunks, held) };
  }

  /**
   * Writes queue/<id>.eml from `parts` (buffers and streams, in order) through one file handle, fsynced.
   * Returns its size. An .eml in queue/ is not a queued message until commit() puts its state beside it.
   */
  async writeMessage(id: string, parts: readonly Part[]): Promise<number> {
    return this.#writeParts(this.messagePath(id), parts, this.#fsync);
  }

  /** Writes tmp/<name> (not fsynced: a pass-through message that is only staged there). */
  async writeTemp(name: string, parts: readonly Part[]): Promise<{ readonly path: string; readonly size: number }> {
    const file = this.path('tmp', name);
    return { path: file, size: await this.#writeParts(file, parts, false) };
  }

  async #writeParts(file: string, parts: readonly Part[], fsync: boolean): Promise<number> {
    const handle = await fs.open(file, 'wx');
    let size = 0;
    try {
      // Buffers in a row go out in one writev: each file operation is a trip through the thread pool.
      const pending: Buffer[] = [];
      const flush = async () => {
        if (pending.length > 0) await handle.writev(pending.splice(0));
      };
      for (const part of parts) {
        if (Buffer.isBuffer(part)) {
          pending.push(part);
          size += part.length;
        } else if ('path' in part) {
          await flush();
          size += await copyRange(part, handle);
        } else {
          await flush();
          for await (const chunk of part) {
            await handle.write(chunk);
            size += chunk.length;
          }
        }
      }
      await flush();
      if (fsync) await this.#io.fsync(handle);
    } catch (err) {
      await handle.close().catch(() => {});
      await unlinkIfThere(file);
      throw err;
    } finally {
      await handle.close().catch(() => {});
    }
    return size;
  }

  /**
   * Makes queue/<id>.eml (written by writeMessage) a queued message with this state. Resolves only when
   * the state file and both directory entries are on disk; on any failure nothing is queued and the
   * files are gone.
   */
  async commit(entry: QueuedMessage): Promise<void> {
    const json = `${entry.id}.json`;
    try {
      await this.#writeJson(this.path('tmp', json), entry);
      await this.#io.rename(this.path('tmp', json), this.path('queue', json));
      // One directory fsync covers the .eml created there and the .json renamed in (group commit).
      await this.#syncQueueDir();
    } catch (err) {
      await Promise.all([this.path('tmp', json), this.path('queue', json), this.messagePath(entry.id)].map(unlinkIfThere));
      throw err;
    }
  }

  /** Removes files staged by receive() or writeTemp() (absolute paths they returned). */
  async discardStaged(paths: readonly string[]): Promise<void> {
    await Promise.all(paths.map(unlinkIfThere));
  }


  /** The current state of a queued message, or undefined if it is gone (delivered, deleted). */
  async read(id: string): Promise<QueuedMessage | undefined> {
    await this.#moving.get(id)?.catch(() => {});
    const journaled = this.#journal.entry(id);
    if (journaled) return journaled;
    try {
      const parsed: unknown = JSON.parse(await fs.readFile(this.path('queue', `${id}.json`), 'utf8'));
      return isQueuedMessage(parsed) ? parsed : undefined;
    } catch {
      return undefined;
    }
  }

  /** Replaces the state of a queued message: write aside, fsync, rename over. */
  async update(entry: QueuedMessage): Promise<void> {
    if (this.#journal.has(entry.id) || this.#moving.has(entry.id)) return this.#moveOut(entry.id, entry);
    await this.#replaceState(entry);
  }

  async #replaceState(entry: QueuedMessage): Promise<void> {
    const aside = this.path('queue', `${entry.id}.json.new`);
    await this.#writeJson(aside, entry);
    await this.#io.rename(aside, this.path('queue', `${entry.id}.json`));
    await this.#syncQueueDir();
  }

  messagePath(id: string): string {
    return this.path('queue', `${id}.eml`);
  }

  /**
   * Delivered to every recipient: the message leaves the spool. The removal is not fsynced, as in
   * Postfix: only a crash of the machine (not of the relay) can undo it, and then the message is sent
   * again, a duplicate rather than a loss. It saves a directory fsync per message.
   */
  async remove(id: string): Promise<void> {
    await this.#moving.get(id)?.catch(() => {});
    if (this.#journal.has(id)) return this.#journal.done(id);
    // The state file first: an .eml without it is an unfinished commit and is cleared at start.
    await unlinkIfThere(this.path('queue', `${id}.json`));
    await unlinkIfThere(this.path('queue', `${id}.eml`));
  }

  /** Finished with failures: kept in failed/ for inspection. */
  async moveToFailed(entry: QueuedMessage): Promise<void> {
    if (this.#journal.has(entry.id) || this.#moving.has(entry.id)) await this.#moveOut(entry.id, entry);
    await this.#writeJson(this.path('failed', `${entry.id}.json`), entry);
    await this.#io.rename(this.path('queue', `${entry.id}.eml`), this.path('failed', `${entry.id}.eml`));
    await fs.rm(this.path('queue', `${entry.id}.json`), { force: true });
    await this.#syncQueueDir();
  }

  /** Requests from `tenant-relay queue` (retry, delete) waiting beside their entries. */
  async requests(): Promise<{ readonly id: string; readonly kind: 'retry' | 'delete' }[]> {
    const names = await fs.readdir(path.join(this.dir, 'queue'));
    return names.flatMap((n) => {
      const m = /^(.+)\.(retry|delete)$/.exec(n);
      return m?.[1] && (m[2] === 'retry' || m[2] === 'delete') ? [{ id: m[1], kind: m[2] }] : [];
    });
  }

  async request(id: string, kind: 'retry' | 'delete'): Promise<void> {
    await fs.writeFile(this.path('queue', `${id}.${kind}`), '');
  }

  async clearRequest(id: string, kind: 'retry' | 'delete'): Promise<void> {
    await fs.rm(this.path('queue', `${id}.${kind}`), { force: true });
  }

  /** Reads queue/ at start: valid entries back to work, anything unreadable moved to corrupt/. */
  async scan(): Promise<ScanReport> {
    await this.init();
    const journal = await this.#journal.open();
    for (const name of await fs.readdir(path.join(this.dir, 'tmp'))) await fs.rm(this.path('tmp', name), { force: true });
    const names = new Set(await fs.readdir(path.join(this.dir, 'queue')));
    const entries: QueuedMessage[] = [];
    const corrupt: { id: string; reason: string }[] = [];
    for (const name of names) {
      if (name.endsWith('.json.new')) {
        await fs.rm(this.path('queue', name), { force: true });
        continue;
      }
      const id = /^(.+)\.(eml|json)$/.exec(name)?.[1];
      if (!id) continue;
      if (name.endsWith('.eml')) {
        // A message whose state never reached queue/ was never acknowledged: the client still has it.
        if (!names.has(`${id}.json`)) await fs.rm(this.path('queue', name), { force: true });
        continue;
      }
      const reason = await this.#problemWith(id, names);
      if (reason) {
        corrupt.push({ id, reason });
        await this.#moveAside(id);
      } else {
        const entry = await this.read(id);
        if (entry) entries.push(entry);
      }
    }
    // A message both in the journal and in queue/ was being moved out: its files are the newer state.
    const filed = new Set(entries.map((e) => e.id));
    for (const e of journal.recovered) {
      if (filed.has(e.id)) this.#journal.done(e.id);
      else entries.push(e);
    }
    return { entries, corrupt, discarded: journal.discarded };
  }

  async #problemWith(id: string, names: Set<string>): Promise<string | undefined> {
    if (!names.has(`${id}.eml`)) return 'message file missing';
    let parsed: unknown;
    try {
      parsed = JSON.parse(await fs.readFile(this.path('queue', `${id}.json`), 'utf8'));
    } catch {
      return 'state file unreadable or truncated';
    }
    if (!isQueuedMessage(parsed) || parsed.id !== id) return 'state file has bad metadata';
    const { size } = await fs.stat(this.path('queue', `${id}.eml`));
    // The recorded size is the end marker: a shorter or longer file is not the message that was accepted.
    if (size !== parsed.size) return `message file is ${size} bytes, ${parsed.size} were accepted`;
    return undefined;
  }

  async #moveAside(id: string): Promise<void> {
    for (const ext of ['eml', 'json']) {
      await fs.rename(this.path('queue', `${id}.${ext}`), this.path('corrupt', `${id}.${ext}`)).catch(() => {});
    }
  }

  async #writeJson(file: string, entry: QueuedMessage): Promise<void> {
    const handle = await fs.open(file, 'w');
    try {
      await handle.writeFile(JSON.stringify(entry));
      if (this.#fsync) await this.#io.fsync(handle);
    } finally {
      await handle.close();
    }
  }

  /**
   * Group commit: every rename made before a call is covered by the fsync that call waits for. Calls
   * that arrive while one fsync runs share the next one, so N concurrent commits cost about two fsyncs.
   */
  #syncQueueDir(): Promise<void> {
    if (!this.#fsync) return Promise.resolve();
    if (this.#dirSyncWaiting) return this.#dirSyncWaiting;
    const next = (async () => {
      await this.#dirSyncRunning?.catch(() => {});
      // From here on, new callers need a new fsync: their renames may come after this one starts.
      this.#dirSyncWaiting = undefined;
      const running = this.#syncDir(path.join(this.dir, 'queue'));
      this.#dirSyncRunning = running;
      try {
        await running;
      } finally {
        if (this.#dirSyncRunning === running) this.#dirSyncRunning = undefined;
      }
    })();
    this.#dirSyncWaiting = next;
    return next;
  }

  async #syncDir(dir: string): Promise<void> {
    // The queue directory's handle stays open: opening it for every group commit was a third of the cost.
    this.#queueDirHandle ??= fs.open(dir, 'r');
    let handle: fs.FileHandle;
    try {
      handle = await this.#queueDirHandle;
    } catch (err) {
      this.#queueDirHandle = undefined;
      throw err;
    }
    await this.#io.fsync(handle);
  }

  /** Closes the queue directory handle kept for fsyncs (the relay's shutdown). */
  async close(): Promise<void> {
    await Promise.allSettled(this.#moving.values());
    await this.#journal.close();
    const handle = this.#queueDirHandle;
    this.#queueDirHandle = undefined;
    await (await handle?.catch(() => undefined))?.close();
  }
}

/**
 * Copies a file range through one reused 1 MiB buffer: a 50 MB message would otherwise leave 50 MB of
 * chunk garbage behind, which the garbage collector lets pile up before it runs.
 */
async function copyRange(range: FileRange, out: fs.FileHandle): Promise<number> {
  const input = await fs.open(range.path, 'r');
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  let copied = 0;
  try {
    for (;;) {
      const { bytesRead } = await input.read(buffer, 0, buffer.length, range.start + copied);
      if (bytesRead === 0) return copied;
      await out.write(buffer, 0, bytesRead);
      copied += bytesRead;
    }
  } finally {
    await input.close();
  }
}

/** fs.rm({ force }) stats first; a plain unlink is one file operation instead of two. */
async function unlinkIfThere(file: string): Promise<void> {
  try {
    await fs.unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
