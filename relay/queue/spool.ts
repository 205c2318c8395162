// The spool on disk. A queued message is two files in queue/: <id>.eml (the bytes to send, immutable)
// and <id>.json (envelope and per-recipient state, replaced atomically). A message exists once its
// .json is in queue/ and that directory is fsynced; only then may the client hear 250.
//
//   tmp/      being written: never acknowledged, cleared at start
//   queue/    accepted, waiting or being delivered; <id>.retry / <id>.delete are requests from the CLI
//   failed/   finished with at least one recipient failed for good, kept for inspection
//   corrupt/  entries found unreadable at start, moved aside
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { isQueuedMessage, type QueuedMessage } from './entry.js';

/** The file operations whose failure the relay must survive; tests replace them to inject faults. */
export interface SpoolIo {
  fsync(file: fs.FileHandle): Promise<void>;
  rename(from: string, to: string): Promise<void>;
}

const realIo: SpoolIo = {
  fsync: (file) => file.sync(),
  rename: (from, to) => fs.rename(from, to),
};

export interface ScanReport {
  readonly entries: QueuedMessage[];
  readonly corrupt: { readonly id: string; readonly reason: string }[];
}

export class Spool {
  readonly dir: string;
  readonly #fsync: boolean;
  readonly #io: SpoolIo;
  #dirSyncWaiting: Promise<void> | undefined;
  #dirSyncRunning: Promise<void> | undefined;

  constructor(dir: string, options: { fsync?: boolean; io?: SpoolIo } = {}) {
    this.dir = dir;
    this.#fsync = options.fsync ?? true;
    this.#io = options.io ?? realIo;
  }

  path(area: 'tmp' | 'queue' | 'failed' | 'corrupt', file: string): string {
    return path.join(this.dir, area, file);
  }

  async init(): Promise<void> {
    for (const area of ['tmp', 'queue', 'failed', 'corrupt']) await fs.mkdir(path.join(this.dir, area), { recursive: true });
  }

  newId(): string {
    // Time first, so that ids sort roughly by arrival, then enough randomness to never collide.
    return `${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
  }

  async freeBytes(): Promise<number> {
    const s = await fs.statfs(this.dir);
    return s.bavail * s.bsize;
  }

  /** Writes `parts` (buffers and streams, in order) to tmp/<name>, fsynced. Returns the byte count. */
  async writeTemp(name: string, parts: readonly (Buffer | AsyncIterable<Buffer>)[]): Promise<number> {
    const file = this.path('tmp', name);
    const out = createWriteStream(file, { flags: 'wx' });
    await pipeline(async function* () {
      for (const part of parts) {
        if (Buffer.isBuffer(part)) yield part;
        else yield* part;
      }
    }, out);
    await this.#syncFile(file);
    return out.bytesWritten;
  }

  /**
   * Stores what a client sends into tmp/<name>. A disk error does not stop the reading: the client must
   * reach its final dot to hear the 451. Resolves with the disk error, if any; rejects if `data` fails
   * (the client left).
   */
  async receiveTemp(name: string, data: AsyncIterable<Buffer>): Promise<unknown> {
    let diskError: unknown;
    let file: fs.FileHandle | undefined;
    try {
      file = await fs.open(this.path('tmp', name), 'wx');
    } catch (err) {
      diskError = err;
    }
    try {
      for await (const chunk of data) {
        if (diskError || !file) continue;
        try {
          await file.write(chunk);
        } catch (err) {
          diskError = err;
        }
      }
    } finally {
      await file?.close().catch(() => {});
    }
    return diskError;
  }

  /**
   * Makes tmp/<id>.eml a queued message with this state. Resolves only when both files and the
   * directory entry are on disk; on any failure nothing is queued and the temp files are gone.
   */
  async commit(entry: QueuedMessage): Promise<void> {
    const eml = `${entry.id}.eml`;
    const json = `${entry.id}.json`;
    try {
      await this.#writeJson(this.path('tmp', json), entry);
      // The message first: a .json in queue/ always has its .eml beside it.
      await this.#io.rename(this.path('tmp', eml), this.path('queue', eml));
      await this.#io.rename(this.path('tmp', json), this.path('queue', json));
      await this.#syncQueueDir();
    } catch (err) {
      await Promise.all([eml, json].flatMap((f) => [this.path('tmp', f), this.path('queue', f)]).map((f) => fs.rm(f, { force: true })));
      throw err;
    }
  }

  async discardTemp(...names: string[]): Promise<void> {
    await Promise.all(names.map((n) => fs.rm(this.path('tmp', n), { force: true })));
  }

  /** The current state of a queued message, or undefined if it is gone (delivered, deleted). */
  async read(id: string): Promise<QueuedMessage | undefined> {
    try {
      const parsed: unknown = JSON.parse(await fs.readFile(this.path('queue', `${id}.json`), 'utf8'));
      return isQueuedMessage(parsed) ? parsed : undefined;
    } catch {
      return undefined;
    }
  }

  /** Replaces the state of a queued message: write aside, fsync, rename over. */
  async update(entry: QueuedMessage): Promise<void> {
    const aside = this.path('queue', `${entry.id}.json.new`);
    await this.#writeJson(aside, entry);
    await this.#io.rename(aside, this.path('queue', `${entry.id}.json`));
    await this.#syncQueueDir();
  }

  messagePath(id: string): string {
    return this.path('queue', `${id}.eml`);
  }

  /** Delivered to every recipient: the message leaves the spool. */
  async remove(id: string): Promise<void> {
    // The state file first: an .eml without it is an unfinished commit and is cleared at start.
    await fs.rm(this.path('queue', `${id}.json`), { force: true });
    await fs.rm(this.path('queue', `${id}.eml`), { force: true });
    await this.#syncQueueDir();
  }

  /** Finished with failures: kept in failed/ for inspection. */
  async moveToFailed(entry: QueuedMessage): Promise<void> {
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
    return { entries, corrupt };
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

  async #syncFile(file: string): Promise<void> {
    if (!this.#fsync) return;
    const handle = await fs.open(file, 'r');
    try {
      await this.#io.fsync(handle);
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
    const handle = await fs.open(dir, 'r');
    try {
      await this.#io.fsync(handle);
    } finally {
      await handle.close();
    }
  }
}
