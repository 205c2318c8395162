// Suppressions in a SQLite file beside the spool (suppressions.db, private): one relay, or its workers,
// which share the file (SQLite's WAL lets them). A lookup is one key read, a few microseconds whatever
// the size; what has expired is skipped at once and deleted hourly.
//
// Lookups are remembered until the file changes. Every delivery asks, and a key read starts a read
// transaction: two fcntl locks on the WAL index and 17-32 us a message when timed in the relay between
// two messages (5 us in a loop). Whether anything was committed since the last read is in the first 48
// bytes of the WAL index (the -shm file): the header every commit rewrites, the one SQLite itself
// compares to know whether its page cache still holds (https://www.sqlite.org/walformat.html, "the
// WAL-index header"). One pread of those bytes tells whether what this process remembers is still what
// the file says, whoever wrote it: a worker, `tenant-relay suppression add`, another relay on the spool.
import { closeSync, mkdirSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { sanitizeUpstreamText } from '../errors.js';
import { PRIVATE_DIR, PRIVATE_FILE } from '../private-files.js';
import { setUpShared, sqlite } from '../sqlite.js';
import { MAX_ADDRESS, MAX_REASON, type Suppression, type SuppressionSource, type SuppressionStore } from './store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS suppressions (
  tenant TEXT NOT NULL,
  address TEXT NOT NULL,
  reason TEXT NOT NULL,
  source TEXT NOT NULL,
  at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (tenant, address)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS suppressions_by_expiry ON suppressions (expires_at);
`;
const PRUNE_MS = 3_600_000;
/** The WAL-index header's first copy: mxFrame, nPage, the salts and the checksum change with each commit. */
const WAL_INDEX_HEADER_BYTES = 48;
/** Lookups remembered between two changes of the file, at most (then forgotten all at once). */
const REMEMBERED_MAX = 10_000;

type Row = Record<string, string | number | null>;

export class LocalSuppressions implements SuppressionStore {
  readonly #db: DatabaseSync;
  readonly #get: StatementSync;
  readonly #put: StatementSync;
  readonly #delete: StatementSync;
  readonly #timer: NodeJS.Timeout;
  readonly #changes: WalIndexWatch;
  /** `tenant NUL address` → its suppression, or null for none; valid while the WAL index says nothing changed. */
  readonly #remembered = new Map<string, Suppression | null>();

  constructor(file: string) {
    const { DatabaseSync } = sqlite();
    mkdirSync(path.dirname(file), { recursive: true, mode: PRIVATE_DIR });
    closeSync(openSync(file, 'a', PRIVATE_FILE));
    this.#db = new DatabaseSync(file);
    // Workers open this one file at the same moment as they start: a failed open would end a worker.
    this.#db.exec('PRAGMA busy_timeout = 5000;');
    setUpShared(this.#db, (db) => {
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
      db.exec(`BEGIN IMMEDIATE; ${SCHEMA} COMMIT;`);
    });
    this.#get = this.#db.prepare('SELECT * FROM suppressions WHERE tenant = ? AND address = ? AND expires_at > ?');
    this.#put = this.#db.prepare(
      `INSERT INTO suppressions (tenant, address, reason, source, at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, address) DO UPDATE SET reason = excluded.reason, source = excluded.source, at = excluded.at, expires_at = max(expires_at, excluded.expires_at)`,
    );
    this.#delete = this.#db.prepare('DELETE FROM suppressions WHERE tenant = ? AND address = ?');
    this.#timer = setInterval(() => this.#prune(), PRUNE_MS);
    this.#timer.unref();
    this.#changes = new WalIndexWatch(`${file}-shm`);
  }

  async check(tenant: string, addresses: readonly string[], now: number): Promise<Map<string, Suppression>> {
    if (this.#changes.changed()) this.#remembered.clear();
    const found = new Map<string, Suppression>();
    for (const a of addresses) {
      const address = a.toLowerCase();
      const key = `${tenant}\u0000${address}`;
      let entry = this.#remembered.get(key);
      if (entry === undefined) {
        // What is read from now on is remembered under the header read above: a commit after that
        // changes the header again, and the next check forgets it.
        const row = this.#get.get(tenant, address, now) as Row | undefined;
        entry = row ? entryOf(row) : null;
        if (this.#remembered.size >= REMEMBERED_MAX) this.#remembered.clear();
        this.#remembered.set(key, entry);
      }
      // Remembered past its expiry: expired is not suppressed (the hourly prune deletes it).
      if (entry && entry.expiresAt > now) found.set(address, entry);
    }
    return found;
  }

  async add(e: Suppression): Promise<void> {
    this.#put.run(e.tenant, e.address.toLowerCase().slice(0, MAX_ADDRESS), sanitizeUpstreamText(e.reason, MAX_REASON), e.source, e.at, e.expiresAt);
  }

  async remove(tenant: string, address: string): Promise<boolean> {
    return Number(this.#delete.run(tenant, address.toLowerCase()).changes) > 0;
  }

  async list(o: { tenant?: string; after?: string; prefix?: string; limit: number; now: number }): Promise<Suppression[]> {
    // Every tenant's: `after` is the last one's "tenant address".
    const [afterTenant = '', afterAddress = ''] = o.tenant === undefined ? (o.after ?? '').split(' ') : [o.tenant, o.after ?? ''];
    // A prefix as a range of the key: the index walks it.
    const from = (o.prefix ?? '').toLowerCase();
    const to = `${from}\uffff`;
    const rows =
      o.tenant === undefined
        ? this.#db.prepare('SELECT * FROM suppressions WHERE (tenant, address) > (?, ?) AND address >= ? AND address < ? AND expires_at > ? ORDER BY tenant, address LIMIT ?').all(afterTenant, afterAddress, from, to, o.now, o.limit)
        : this.#db.prepare('SELECT * FROM suppressions WHERE tenant = ? AND address > ? AND address >= ? AND address < ? AND expires_at > ? ORDER BY address LIMIT ?').all(o.tenant, afterAddress, from, to, o.now, o.limit);
    return (rows as Row[]).map(entryOf);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#changes.close();
    if (this.#db.isOpen) this.#db.close();
  }

  #prune(): void {
    try {
      this.#db.prepare('DELETE FROM suppressions WHERE expires_at <= ?').run(Date.now());
    } catch {
      // Busy (another worker): the next hour.
    }
  }
}

/** Whether anything was committed to a WAL-mode database since the last look: its WAL index's header changed. */
class WalIndexWatch {
  readonly #file: string;
  #fd: number | undefined;
  #last = Buffer.alloc(WAL_INDEX_HEADER_BYTES);
  readonly #now = Buffer.alloc(WAL_INDEX_HEADER_BYTES);

  constructor(file: string) {
    this.#file = file;
  }

  /** True when the header differs from the last look (or cannot be read: then nothing is trusted). */
  changed(): boolean {
    try {
      // Opened at the first look: SQLite creates the file with its first read in WAL mode.
      this.#fd ??= openSync(this.#file, 'r');
      if (readSync(this.#fd, this.#now, 0, WAL_INDEX_HEADER_BYTES, 0) !== WAL_INDEX_HEADER_BYTES) return true;
    } catch {
      return true;
    }
    if (this.#now.equals(this.#last)) return false;
    this.#now.copy(this.#last);
    return true;
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

function entryOf(r: Row): Suppression {
  return { tenant: String(r.tenant), address: String(r.address), reason: String(r.reason), source: String(r.source) as SuppressionSource, at: Number(r.at), expiresAt: Number(r.expires_at) };
}
