// The trace store's tables and indexes, and the steps that bring a store an older relay made up to them.
// Answers come newest first, in queue id order: a queue id starts with the time it was given
// (relay/ids.ts), so the key's own index is the order of time, for free. One index per way a support desk
// asks, each ending in the queue id, so a search walks an index and stops at its page, whatever the store
// holds: by Message-ID, by recipient (a table of its own, one row per recipient of a message), by sender,
// by tenant, by status, or by time alone (the key). Delivered mail, nearly all of it, is left out of the
// status index (a search for delivered mail walks the key: it finds it at once). A routing decision is written once (decisions), not
// once per message: a platform has a few hundred of them.
import type { DatabaseSync } from 'node:sqlite';
import type { Row } from './trace-read.js';

const TABLES = `
CREATE TABLE IF NOT EXISTS messages (
  queue_id TEXT PRIMARY KEY,
  message_id TEXT,
  tenant TEXT,
  mode TEXT NOT NULL,
  mail_from TEXT NOT NULL,
  size INTEGER,
  accepted_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
  queue_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  type TEXT NOT NULL,
  recipient TEXT NOT NULL COLLATE NOCASE,
  upstream TEXT,
  attempt INTEGER NOT NULL,
  reply TEXT NOT NULL,
  upstream_reply TEXT,
  upstream_queue_id TEXT,
  next_attempt_at INTEGER
);
CREATE TABLE IF NOT EXISTS recipients (
  recipient TEXT NOT NULL COLLATE NOCASE,
  queue_id TEXT NOT NULL,
  PRIMARY KEY (recipient, queue_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY,
  text TEXT NOT NULL UNIQUE
);
`;

/** Columns added since the first trace store: an older store gets them, empty, when it is opened. */
const ADDED_COLUMNS: readonly (readonly [table: string, column: string, type: string])[] = [
  ['messages', 'status', 'TEXT'],
  ['messages', 'decision_id', 'INTEGER'],
];

const INDEXES = `
CREATE INDEX IF NOT EXISTS events_by_message ON events (queue_id, at);
CREATE INDEX IF NOT EXISTS messages_by_message_id ON messages (message_id);
CREATE INDEX IF NOT EXISTS messages_by_age ON messages (updated_at);
CREATE INDEX IF NOT EXISTS messages_by_tenant_id ON messages (tenant, queue_id);
CREATE INDEX IF NOT EXISTS messages_by_sender ON messages (mail_from COLLATE NOCASE, queue_id);
CREATE INDEX IF NOT EXISTS messages_needing_a_look ON messages (status, queue_id) WHERE status <> 'delivered';
DROP INDEX IF EXISTS messages_by_tenant;
DROP INDEX IF EXISTS events_by_recipient;
`;

export function createTraceSchema(db: DatabaseSync): void {
  const before = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Row[]).map((r) => r.name));
  db.exec(TABLES);
  // A store from before the recipients table: its messages are found by recipient too, once.
  if (before.has('events') && !before.has('recipients')) {
    db.exec('INSERT OR IGNORE INTO recipients SELECT DISTINCT recipient, queue_id FROM events');
  }
  for (const [table, column, type] of ADDED_COLUMNS) {
    const columns = (db.prepare(`PRAGMA table_info(${table})`).all() as Row[]).map((c) => c.name);
    if (!columns.includes(column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
  }
  db.exec(INDEXES);
}
