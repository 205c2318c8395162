// The message trace: recent messages and every event of theirs (accepted, each attempt with the upstream's
// reply, delivered, bounced, expired), for `tenant-relay trace` and GET /trace on the ops listener. Kept
// in SQLite through node:sqlite: built into Node (no native module to build or download), the most
// widely deployed embedded store, an index for each way a support desk asks (queue id, Message-ID,
// recipient, tenant), and WAL, so the command reads while the relay writes. Rows are committed once per
// 250 ms (a trace is for people: a crash may lose that much of it, never mail), but written into the open
// transaction at the end of the turn that told them: held in memory for 250 ms, a batch's rows (and the
// replies, Message-IDs and decisions they hold) outlived V8's young collections and were copied, then
// promoted to the old generation, to die there (about half of what the relay kept alive at any moment,
// at one message at a time). Bounded: what is older than the retention goes, and the oldest messages go
// first past the size cap.
import { closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { formatUpstreamReply, sanitizeUpstreamText } from '../errors.js';
import type { DiskSpace } from '../disk-space.js';
import { PRIVATE_DIR, PRIVATE_FILE } from '../private-files.js';
import type { MessageFacts } from '../observe/outcomes.js';
import type { DeliveryEvent } from './delivery-events.js';
import { findIn, type Row, sqlite, STATUS_OF_EVENT, STATUS_RANK, type TracedMessage, type TraceQuery, type TraceStatus } from './trace-read.js';
import { createTraceSchema } from './trace-schema.js';
import { type MessageSearch, type SearchPage, searchIn } from './trace-search.js';

/** A reply kept in the trace: the relay's or the upstream's, one line. */
const MAX_TEXT = 1000;

/**
 * What reaches the store is one printable line of bounded length, whoever wrote it first (the sources
 * already clean what they pass on; this holds whatever a new source forgets).
 */
function clean<T extends string | null>(text: T, max: number): T {
  return (text === null ? null : sanitizeUpstreamText(text, max)) as T;
}

/** Recipients of one message the trace finds it by (the relay takes at most inbound.maxRecipients). */
const MAX_RECIPIENTS = 1000;

type TraceRow = { kind: 'message'; message: MessageFacts; size: number; recipients: readonly string[]; decision: string | undefined } | { kind: 'event'; event: DeliveryEvent };

const FLUSH_MS = 250;
/** What a row costs on disk, about (the row, its indexes), for the volume's accounting. */
const ROW_BYTES = 400;
const FLUSH_ROWS = 2000;
const MAINTAIN_MS = 3_600_000;


export class TraceStore {
  readonly #db: DatabaseSync;
  readonly #now: () => number;
  readonly #retentionMs: number;
  readonly #maxBytes: number;
  /** Rows told in this turn, written at its end. */
  #queue: TraceRow[] = [];
  #writeQueued = false;
  /** Rows in the open transaction, committed by this timer (or by a read, a maintenance, a close). */
  #openRows = 0;
  #commitTimer: NodeJS.Timeout | undefined;
  readonly #maintainTimer: NodeJS.Timeout | undefined;
  readonly #insertMessage: StatementSync;
  readonly #insertEvent: StatementSync;
  readonly #insertRecipient: StatementSync;
  readonly #decisions: DecisionIds;
  readonly #disk: DiskSpace | undefined;
  /** Outcomes not yet told to the trace (they come in batches, observe/outcomes.ts): told before a read. */
  readonly #beforeRead: (() => void) | undefined;
  readonly #file: string;

  /** Opens (or creates) the store the relay writes. */
  constructor(file: string, options: { retentionMs: number; maxBytes: number; now?: () => number; maintainEveryMs?: number; disk?: DiskSpace; beforeRead?: () => void }) {
    const { DatabaseSync } = sqlite();
    mkdirSync(path.dirname(file), { recursive: true, mode: PRIVATE_DIR });
    // Created private before SQLite opens it: its -wal and -shm files take the database file's mode.
    closeSync(openSync(file, 'a', PRIVATE_FILE));
    this.#db = new DatabaseSync(file);
    // Before the first table: lets deleted rows give their pages back to the file system. The WAL is
    // checkpointed and cut back often enough that it stays a small part of the cap.
    const walBytes = Math.max(256 * 1024, Math.floor(options.maxBytes / 20));
    this.#db.exec(`PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = ${walBytes}; PRAGMA wal_autocheckpoint = ${Math.max(16, Math.floor(walBytes / 4096))};`);
    this.#file = file;
    this.#disk = options.disk;
    this.#beforeRead = options.beforeRead;
    createTraceSchema(this.#db);
    this.#now = options.now ?? Date.now;
    this.#retentionMs = options.retentionMs;
    this.#maxBytes = options.maxBytes;
    // A message's status is its latest event's; of events at the same moment (one attempt, several
    // recipients), the one that most needs a look (a bounce over a deferral over a delivery).
    const rank = (column: string) => `instr('${STATUS_RANK}', ',' || ${column} || ',')`;
    this.#insertMessage = this.#db.prepare(
      `INSERT INTO messages (queue_id, message_id, tenant, mode, mail_from, size, accepted_at, updated_at, status, decision_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (queue_id) DO UPDATE SET size = coalesce(excluded.size, size), decision_id = coalesce(excluded.decision_id, decision_id),
         status = CASE WHEN excluded.status IS NULL THEN status
           WHEN status IS NULL OR excluded.updated_at > updated_at OR (excluded.updated_at = updated_at AND ${rank('excluded.status')} >= ${rank('status')}) THEN excluded.status
           ELSE status END,
         updated_at = max(updated_at, excluded.updated_at)`,
    );
    this.#insertRecipient = this.#db.prepare('INSERT OR IGNORE INTO recipients (recipient, queue_id) VALUES (?, ?)');
    this.#decisions = new DecisionIds(this.#db);
    this.#insertEvent = this.#db.prepare(
      'INSERT INTO events (queue_id, at, type, recipient, upstream, attempt, reply, upstream_reply, upstream_queue_id, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.maintain();
    if (options.maintainEveryMs !== 0) {
      this.#maintainTimer = setInterval(() => this.maintain(), options.maintainEveryMs ?? MAINTAIN_MS);
      this.#maintainTimer.unref();
    }
  }

  /** A message accepted (both modes): its size as it goes out, its recipients, and why it went where it went. */
  accepted(message: MessageFacts, size: number, recipients: readonly string[], decision: string | undefined): void {
    this.#push({ kind: 'message', message, size, recipients, decision });
  }

  events(events: readonly DeliveryEvent[]): void {
    for (const event of events) this.#push({ kind: 'event', event });
  }

  /** Writes what waits and commits it. */
  flush(): void {
    this.#write();
    this.#commit();
  }

  /** The rows told so far go into the open transaction (one opened, and its commit timed, if none is). */
  #write(): void {
    this.#writeQueued = false;
    if (this.#queue.length === 0) return;
    const rows = this.#queue;
    this.#queue = [];
    this.#disk?.written(rows.length * ROW_BYTES);
    if (!this.#db.isTransaction) {
      this.#db.exec('BEGIN');
      this.#commitTimer = setTimeout(() => this.#safely(() => this.#commit()), FLUSH_MS);
    }
    try {
      this.#insert(rows);
    } catch (err) {
      this.#rollback();
      throw err;
    }
    this.#openRows += rows.length;
    if (this.#openRows >= FLUSH_ROWS) this.#commit();
  }

  #commit(): void {
    clearTimeout(this.#commitTimer);
    this.#commitTimer = undefined;
    if (!this.#db.isTransaction) return;
    try {
      this.#db.exec('COMMIT');
    } catch (err) {
      this.#rollback();
      throw err;
    }
    this.#openRows = 0;
    // The cap holds as the store grows, not only at the hourly look.
    if (this.#usedBytes() > this.#maxBytes) this.#shrink();
  }

  #rollback(): void {
    clearTimeout(this.#commitTimer);
    this.#commitTimer = undefined;
    this.#openRows = 0;
    if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
    // Decisions first written in the lost transaction are gone too: their ids must not be used again.
    this.#decisions.forget();
  }

  #insert(rows: readonly TraceRow[]): void {
    // One row per message a batch names, written once: its acceptance and the events that came with it
    // (most messages are delivered within the batch) fold into it first.
    for (const m of foldMessages(rows).values()) {
      const decision = m.decision === undefined ? null : this.#decisions.idOf(clean(m.decision, 300));
      this.#insertMessage.run(m.id, clean(m.messageId, 998), m.tenant, m.mode, clean(m.mailFrom, 320), m.size, m.acceptedAt, m.updatedAt, m.status, decision);
      for (const r of m.recipients.slice(0, MAX_RECIPIENTS)) this.#insertRecipient.run(clean(r, 320), m.id);
    }
    for (const row of rows) {
      if (row.kind === 'message') continue;
      const e = row.event;
      const said = e.upstreamReply;
      this.#insertEvent.run(
        e.queueId,
        Date.parse(e.time),
        e.type,
        clean(e.recipient, 320),
        e.upstream,
        e.attempt,
        clean(e.reply, MAX_TEXT),
        clean(said ? formatUpstreamReply(said) : null, MAX_TEXT),
        clean(said?.queueId ?? null, 200),
        e.nextAttemptAt ? Date.parse(e.nextAttemptAt) : null,
      );
    }
  }

  /** Forgets what is older than the retention, then the oldest messages while the store is over its size. */
  maintain(): void {
    this.flush();
    const cutoff = this.#now() - this.#retentionMs;
    this.#deleteWhere('updated_at < ?', cutoff);
    if (this.#usedBytes() > this.#maxBytes) this.#shrink();
    this.#db.exec('PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);');
  }

  /** The oldest messages go, a tenth at a time, until the store (and its WAL) is under 85 % of its cap. */
  #shrink(): void {
    for (let round = 0; round < 20 && this.#usedBytes() > this.#maxBytes * 0.85; round++) {
      const count = Number((this.#db.prepare('SELECT count(*) AS n FROM messages').get() as Row).n);
      if (count === 0) break;
      const oldest = this.#db.prepare('SELECT updated_at FROM messages ORDER BY updated_at LIMIT 1 OFFSET ?').get(Math.max(0, Math.ceil(count / 10) - 1)) as Row | undefined;
      this.#deleteWhere('updated_at <= ?', Number(oldest?.updated_at ?? Number.MAX_SAFE_INTEGER));
      this.#db.exec('PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);');
    }
  }

  /** Newest first; with `tenant`, that tenant's messages only. */
  find(query: TraceQuery, limit = 50, tenant?: string): TracedMessage[] {
    this.#beforeRead?.();
    this.flush();
    return findIn(this.#db, query, limit, tenant);
  }

  /** The mail console's search: a page, newest first (trace-search.ts). */
  search(search: MessageSearch, scope?: string): SearchPage {
    this.#beforeRead?.();
    this.flush();
    return searchIn(this.#db, search, scope);
  }

  close(): void {
    if (!this.#db.isOpen) return;
    if (this.#maintainTimer) clearInterval(this.#maintainTimer);
    this.#safely(() => this.flush());
    this.#db.close();
  }

  #push(row: TraceRow): void {
    // Under the volume's floor the room is mail's: the trace is for people, and can do without.
    if (!this.#db.isOpen || this.#disk?.belowFloor) return;
    this.#queue.push(row);
    if (this.#writeQueued) return;
    this.#writeQueued = true;
    queueMicrotask(() => this.#safely(() => this.#write()));
  }

  #safely(step: () => void): void {
    try {
      step();
    } catch {
      // A full disk or a locked file: the rows since the last commit are lost, mail is not affected.
      this.#queue = [];
    }
  }

  #deleteWhere(condition: string, value: number): void {
    // Recipients first, found through the events of the messages that go (each a lookup by its key).
    this.#db.prepare(`DELETE FROM recipients WHERE (recipient, queue_id) IN (SELECT e.recipient, e.queue_id FROM messages m JOIN events e ON e.queue_id = m.queue_id WHERE m.${condition})`).run(value);
    this.#db.prepare(`DELETE FROM events WHERE queue_id IN (SELECT queue_id FROM messages WHERE ${condition})`).run(value);
    this.#db.prepare(`DELETE FROM messages WHERE ${condition}`).run(value);
  }

  /** What the store takes on disk: its pages in use and its write-ahead log. */
  #usedBytes(): number {
    const pragma = (name: string) => Number(Object.values(this.#db.prepare(`PRAGMA ${name}`).get() as Row)[0]);
    let wal = 0;
    try {
      wal = statSync(`${this.#file}-wal`).size;
    } catch {
      // No WAL right now.
    }
    return (pragma('page_count') - pragma('freelist_count')) * pragma('page_size') + wal;
  }
}

/** The id of each routing decision's text, kept in the store once; the last few hundred looked up in memory. */
class DecisionIds {
  readonly #known = new Map<string, number>();
  readonly #insert: StatementSync;
  readonly #select: StatementSync;

  constructor(db: DatabaseSync) {
    this.#insert = db.prepare('INSERT OR IGNORE INTO decisions (text) VALUES (?)');
    this.#select = db.prepare('SELECT id FROM decisions WHERE text = ?');
  }

  forget(): void {
    this.#known.clear();
  }

  idOf(text: string): number {
    let id = this.#known.get(text);
    if (id !== undefined) return id;
    this.#insert.run(text);
    id = Number((this.#select.get(text) as Row).id);
    if (this.#known.size >= 1000) this.#known.clear();
    this.#known.set(text, id);
    return id;
  }
}

interface FoldedMessage {
  readonly id: string;
  messageId: string | null;
  tenant: string | null;
  mode: string;
  mailFrom: string;
  size: number | null;
  acceptedAt: number;
  updatedAt: number;
  status: TraceStatus | null;
  decision: string | undefined;
  recipients: string[];
}

const rankOf = (status: TraceStatus) => STATUS_RANK.indexOf(`,${status},`);

/**
 * The messages a batch names, each with what its rows say of it: the store's upsert merges this with what
 * it holds, by the same rule (the latest event's status; at the same moment, the one that needs a look).
 */
function foldMessages(rows: readonly TraceRow[]): Map<string, FoldedMessage> {
  const folded = new Map<string, FoldedMessage>();
  const accepted = new Set<string>();
  for (const row of rows) {
    if (row.kind === 'message') {
      const m = row.message;
      const had = folded.get(m.id);
      const base = { messageId: m.messageId ?? null, tenant: m.tenant, mode: m.mode, mailFrom: m.mailFrom, size: row.size, acceptedAt: m.acceptedAt, decision: row.decision, recipients: [...row.recipients] };
      folded.set(m.id, had ? { ...had, ...base } : { id: m.id, ...base, updatedAt: m.acceptedAt, status: null });
      accepted.add(m.id);
      continue;
    }
    const e = row.event;
    const at = Date.parse(e.time);
    const status = STATUS_OF_EVENT[e.type];
    let m = folded.get(e.queueId);
    // Events carry the message's facts: a DSN the relay made has no accepted row of its own.
    if (!m) {
      m = { id: e.queueId, messageId: e.messageId, tenant: e.tenant, mode: e.mode, mailFrom: e.from, size: null, acceptedAt: Date.parse(e.acceptedAt), updatedAt: at, status: null, decision: undefined, recipients: [] };
      folded.set(e.queueId, m);
    }
    // Found by its recipients even when its acceptance is not in this batch (written before, a DSN, or
    // lost under the volume's floor): a lookup by key when the row is there already.
    if (!accepted.has(e.queueId) && !m.recipients.includes(e.recipient)) m.recipients.push(e.recipient);
    if (m.status === null || at > m.updatedAt || (at === m.updatedAt && rankOf(status) >= rankOf(m.status))) m.status = status;
    m.updatedAt = Math.max(m.updatedAt, at);
  }
  return folded;
}
