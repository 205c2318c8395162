// A queued message as files of its own in queue/: <id>.eml, the bytes to send (immutable, fsynced), and
// <id>.json, its state (written aside, fsynced, renamed in). The message exists once its .json is in
// queue/ and that directory is fsynced; an .eml without its .json is an unfinished commit. Directory
// fsyncs are shared between concurrent commits (group commit).
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import { type Part, unlinkIfThere, writeParts } from '../files.js';
import { PRIVATE_FILE } from '../private-files.js';
import { isQueuedMessage, type QueuedMessage } from './entry.js';
import type { SpoolLayout } from './spool-layout.js';

/** The file operations whose failure the relay must survive; tests replace them to inject faults. */
export interface SpoolIo {
  /** `inline`: on the calling thread (the journal's choice, inline-sync.ts); a fault-injecting io may ignore it. */
  fsync(file: fs.FileHandle, inline?: boolean): Promise<void>;
  rename(from: string, to: string): Promise<void>;
}

export const realIo: SpoolIo = {
  fsync: (file, inline) => {
    if (!inline) return file.sync();
    try {
      fsSync.fsyncSync(file.fd);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    }
  },
  rename: (from, to) => fs.rename(from, to),
};

export class MessageFiles {
  readonly #layout: SpoolLayout;
  readonly #fsync: boolean;
  readonly #io: SpoolIo;
  #dirSyncWaiting: Promise<void> | undefined;
  #dirSyncRunning: Promise<void> | undefined;
  #queueDirHandle: Promise<fs.FileHandle> | undefined;

  constructor(layout: SpoolLayout, options: { fsync: boolean; io: SpoolIo }) {
    this.#layout = layout;
    this.#fsync = options.fsync;
    this.#io = options.io;
  }

  /** Writes queue/<id>.eml from `parts`, fsynced; not a queued message until commit() puts its state beside it. */
  writeMessage(id: string, parts: readonly Part[]): Promise<number> {
    return writeParts(this.#layout.message(id), parts, this.#fsync ? (h) => this.#io.fsync(h) : undefined);
  }

  /**
   * Makes queue/<id>.eml a queued message with this state. Resolves only when the state file and both
   * directory entries are on disk; on any failure nothing is queued and the files are gone.
   */
  async commit(entry: QueuedMessage): Promise<void> {
    const draft = this.#layout.stateDraft(entry.id);
    const state = this.#layout.state(entry.id);
    try {
      await this.#writeJson(draft, entry);
      await this.#io.rename(draft, state);
      // One directory fsync covers the .eml created there and the .json renamed in (group commit).
      await this.#syncQueueDir();
    } catch (err) {
      await Promise.all([draft, state, this.#layout.message(entry.id)].map(unlinkIfThere));
      throw err;
    }
  }

  async read(id: string): Promise<QueuedMessage | undefined> {
    try {
      const parsed: unknown = JSON.parse(await fs.readFile(this.#layout.state(id), 'utf8'));
      return isQueuedMessage(parsed) ? parsed : undefined;
    } catch {
      return undefined;
    }
  }

  /** Replaces the state: written aside, fsynced, renamed over. */
  async update(entry: QueuedMessage): Promise<void> {
    const aside = this.#layout.stateAside(entry.id);
    await this.#writeJson(aside, entry);
    await this.#io.rename(aside, this.#layout.state(entry.id));
    await this.#syncQueueDir();
  }

  /**
   * The removal is not fsynced, as in Postfix: only a crash of the machine (not of the relay) can undo
   * it, and then the message is sent again, a duplicate rather than a loss.
   */
  async remove(id: string): Promise<void> {
    // The state file first: an .eml without it is an unfinished commit and is cleared at start.
    await unlinkIfThere(this.#layout.state(id));
    await unlinkIfThere(this.#layout.message(id));
  }

  /** Finished with failures: kept in failed/ for inspection. */
  async moveToFailed(entry: QueuedMessage): Promise<void> {
    await this.#writeJson(this.#layout.state(entry.id, 'failed'), entry);
    await this.#io.rename(this.#layout.message(entry.id), this.#layout.message(entry.id, 'failed'));
    await fs.rm(this.#layout.state(entry.id), { force: true });
    await this.#syncQueueDir();
  }

  async close(): Promise<void> {
    const handle = this.#queueDirHandle;
    this.#queueDirHandle = undefined;
    await (await handle?.catch(() => undefined))?.close();
  }

  async #writeJson(file: string, entry: QueuedMessage): Promise<void> {
    const handle = await fs.open(file, 'w', PRIVATE_FILE);
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
      const running = this.#syncDir();
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

  async #syncDir(): Promise<void> {
    // The queue directory's handle stays open: opening it for every group commit was a third of the cost.
    this.#queueDirHandle ??= fs.open(this.#layout.dir('queue'), 'r');
    let handle: fs.FileHandle;
    try {
      handle = await this.#queueDirHandle;
    } catch (err) {
      this.#queueDirHandle = undefined;
      throw err;
    }
    await this.#io.fsync(handle);
  }
}
