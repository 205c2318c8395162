// Where DATA goes while the relay works on it: kept in memory up to a limit; past it, the whole message
// goes to a temp file (the spool's tmp/, cleared at start), so a large message costs a bounded amount of
// memory in either mode. Nothing staged here is durable or acknowledged: the spool's commit is.
import fs from 'node:fs/promises';
import path from 'node:path';
import { type Part, unlinkIfThere, writeParts } from '../files.js';
import { releaseChunks } from '../ops/memory.js';
import { PRIVATE_FILE } from '../private-files.js';

/**
 * What a client sent: in memory (the chunks as they arrived, not joined: the intake joins them behind
 * the rewritten header only when the message is small), or in a temp file; or the disk failed.
 */
export type Received = { readonly kind: 'memory'; readonly chunks: readonly Buffer[] } | { readonly kind: 'file'; readonly path: string } | { readonly kind: 'failed'; readonly error: unknown };

/** Bytes waiting for the disk before the client is asked to wait: what the message stream used to hold. */
const SPILL_WAITING_MAX = 256 * 1024;

export class Staging {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * A message too large for memory, written to a temp file as it comes (data.ts). `more` is called when
   * the writes have caught up after a write that asked the client to wait.
   */
  spill(id: string, more: () => void): Spill {
    return new Spill(path.join(this.#dir, `${id}.raw`), more);
  }

  /** Writes a staged file from parts (not fsynced: it is never the only copy of anything acknowledged). */
  async write(name: string, parts: readonly Part[]): Promise<{ readonly path: string; readonly size: number }> {
    const file = path.join(this.#dir, name);
    return { path: file, size: await writeParts(file, parts) };
  }

  async discard(paths: readonly string[]): Promise<void> {
    await Promise.all(paths.map(unlinkIfThere));
  }
}

/**
 * A temp file written in order, one write at a time. A disk error does not stop the client: the rest
 * is dropped, and `finish` says `failed`, so the client reaches its final dot and hears the 451.
 */
export class Spill {
  readonly #path: string;
  readonly #more: () => void;
  readonly #file: Promise<fs.FileHandle>;
  #writes: Promise<void>;
  #waiting = 0;
  #paused = false;
  #error: unknown;

  constructor(file: string, more: () => void) {
    this.#path = file;
    this.#more = more;
    this.#file = fs.open(file, 'wx', PRIVATE_FILE);
    this.#writes = this.#file.then(
      () => {},
      (err: unknown) => {
        this.#error = err;
      },
    );
  }

  /** False: past what may wait for the disk, the client should wait (until `more`). */
  write(chunk: Buffer): boolean {
    if (this.#error) return true;
    this.#waiting += chunk.length;
    this.#writes = this.#writes.then(async () => {
      if (!this.#error) {
        try {
          await (await this.#file).write(chunk);
        } catch (err) {
          this.#error = err;
        }
      }
      releaseChunks(chunk.length);
      this.#waiting -= chunk.length;
      if (this.#paused && (this.#waiting <= SPILL_WAITING_MAX / 2 || this.#error)) {
        this.#paused = false;
        this.#more();
      }
    });
    if (this.#waiting <= SPILL_WAITING_MAX) return true;
    this.#paused = true;
    return false;
  }

  /** Once every write is done: the file, or the disk's error (the file then removed). */
  async finish(): Promise<Received> {
    await this.#writes;
    await this.#close();
    if (this.#error === undefined) return { kind: 'file', path: this.#path };
    await unlinkIfThere(this.#path).catch(() => {});
    return { kind: 'failed', error: this.#error };
  }

  /** The client left: the file goes. */
  async discard(): Promise<void> {
    await this.#writes;
    await this.#close();
    await unlinkIfThere(this.#path).catch(() => {});
  }

  async #close(): Promise<void> {
    const file = await this.#file.catch(() => undefined);
    await file?.close().catch(() => {});
  }
}
