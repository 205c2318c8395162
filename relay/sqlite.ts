// node:sqlite, loaded when a store is opened (the trace, the suppressions), not at start: Node 22 prints an
// experimental warning as it loads.
import { createRequire } from 'node:module';
import type { DatabaseSync } from 'node:sqlite';

export function sqlite(): typeof import('node:sqlite') {
  return createRequire(import.meta.url)('node:sqlite') as typeof import('node:sqlite');
}

const OPEN_TRIES = 60;
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs `setup` on a file that other processes (the workers) open at the same moment. SQLite answers
 * SQLITE_BUSY at once, without its lock wait, where two connections would deadlock: switching a new file
 * to WAL, or a read that has to become a write (CREATE ... IF NOT EXISTS). So a busy setup is tried again
 * after a short pause (blocking: this runs once, as a process starts), for at most about 3 s.
 */
export function setUpShared(db: DatabaseSync, setup: (db: DatabaseSync) => void): void {
  for (let attempt = 1; ; attempt++) {
    try {
      setup(db);
      return;
    } catch (err) {
      if (!isBusy(err) || attempt >= OPEN_TRIES) throw err;
      if (db.isTransaction) db.exec('ROLLBACK');
      Atomics.wait(pause, 0, 0, 10 + Math.floor(Math.random() * 80));
    }
  }
}

function isBusy(err: unknown): boolean {
  const e = err as { errcode?: unknown; message?: unknown };
  // errcode's low byte is the primary code: 5 SQLITE_BUSY, 6 SQLITE_LOCKED.
  return (typeof e.errcode === 'number' && [5, 6].includes(e.errcode & 0xff)) || /database is locked|database table is locked/.test(String(e.message));
}
