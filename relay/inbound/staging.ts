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

export class Staging {
  readonly #dir: string;

  constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Reads what a client sends. A disk error does not stop the reading: the client must reach its final
   * dot to hear the 451. Rejects if `data` fails (the client left), with any temp file removed.
   */
  async receive(id: string, data: AsyncIterable<Buffer>, keepInMemory: number): Promise<Received> {
    const chunks: Buffer[] = [];
    let held = 0;
    let file: fs.FileHandle | undefined;
    let diskError: unknown;
    const rawPath = path.join(this.#dir, `${id}.raw`);
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
            file = await fs.open(rawPath, 'wx', PRIVATE_FILE);
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
    return file ? { kind: 'file', path: rawPath } : { kind: 'memory', chunks };
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
