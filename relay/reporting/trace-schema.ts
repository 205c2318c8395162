// The trace store's tables and indexes, and the steps that bring a store an older relay made up to them.
// One index per way a support desk asks, each ending in the order answers are given (newest first), so
// a search walks an index and stops at its page, whatever the store holds:
//   by queue id (the key), by Message-ID, by recipient (a table of its own: one row per recipient of a
//   message, kept in that order), by sender, by tenant, by status, or by time alone.
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
  accepted_at INTEGER NOT NULL,
  queue_id TEXT NOT NULL,
  PRIMARY KEY (recipient, accepted_at, queue_id)
) WITHOUT ROWID;
`;

/** Columns added since the first trace store: an older store gets them, empty, when it is opened. */
const ADDED_COLUMNS: readonly (readonly [table: string, column: string, type: string])[] = [
  ['messages', 'status', 'TEXT'],
  ['messages', 'decision', 'TEXT'],
];

const INDEXES = `
CREATE INDEX IF NOT EXISTS events_by_message ON events (queue_id, at);
CREATE INDEX IF NOT EXISTS messages_by_message_id ON messages (message_id);
CREATE INDEX IF NOT EXISTS messages_by_tenant ON messages (tenant, accepted_at);
CREATE INDEX IF NOT EXISTS messages_by_age ON messages (updated_at);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (accepted_at, queue_id);
CREATE INDEX IF NOT EXISTS messages_by_sender ON messages (mail_from COLLATE NOCASE, accepted_at);
CREATE INDEX IF NOT EXISTS messages_by_status ON messages (status, accepted_at);
DROP INDEX IF EXISTS events_by_recipient;
`;

export function createTraceSchema(db: DatabaseSync): void {
  const before = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Row[]).map((r) => r.name));
  db.exec(TABLES);
  // A store from before the recipients table: its messages are found by recipient too, once.
  if (before.has('events') && !before.has('recipients')) {
    db.exec('INSERT OR IGNORE INTO recipients SELECT DISTINCT e.recipient, m.accepted_at, m.queue_id FROM events e JOIN messages m ON m.queue_id = e.queue_id');
  }
  for (const [table, column, type] of ADDED_COLUMNS) {
    const columns = (db.prepare(`PRAGMA table_info(${table})`).all() as Row[]).map((c) => c.name);
    if (!columns.includes(column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
  }
  db.exec(INDEXES);
}
