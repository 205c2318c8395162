// File writing the inbound staging and the spool share: a message written from parts (buffers, streams,
// and ranges of other files) through one handle.
import fs from 'node:fs/promises';
import { PRIVATE_FILE } from './private-files.js';

/** Bytes of a file from `start` to its end: a part copied without allocating per chunk. */
export interface FileRange {
  readonly path: string;
  readonly start: number;
}

export type Part = Buffer | AsyncIterable<Buffer> | FileRange;

/** Writes `parts` in order to a new file (never over an existing one); fsyncs it when asked. Returns its size. */
export async function writeParts(file: string, parts: readonly Part[], sync?: (handle: fs.FileHandle) => Promise<void>): Promise<number> {
  const handle = await fs.open(file, 'wx', PRIVATE_FILE);
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
    if (sync) await sync(handle);
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

/** Renames `from` to `to`; a file gone meanwhile (whoever left it took it back) is no error. */
export async function renameIfThere(from: string, to: string): Promise<void> {
  try {
    await fs.rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** fs.rm({ force }) stats first; a plain unlink is one file operation instead of two. */
export async function unlinkIfThere(file: string): Promise<void> {
  try {
    await fs.unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
