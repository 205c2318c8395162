// The mail console's search over the trace: by recipient, sender, Message-ID, queue id, tenant, status and
// time, newest first (queue id order: ids begin with their time), a page at a time. A page ends with a
// cursor (the last message's queue id): the next page starts after it, so a page costs the same at the
// end of ten million messages as at the start, and messages arriving meanwhile do not shift it. Each way
// of asking walks its own index in that order (trace-schema.ts); other conditions filter the walk.
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { type Row, sqlite, type TraceStatus } from './trace-read.js';

export interface MessageSearch {
  /** What a person typed: an address (recipient or sender), a Message-ID or a queue id. */
  readonly text?: string;
  readonly recipient?: string;
  readonly sender?: string;
  readonly messageId?: string;
  readonly queueId?: string;
  readonly tenant?: string;
  readonly status?: TraceStatus;
  /** Accepted at or after / before, milliseconds since the epoch. */
  readonly since?: number;
  readonly until?: number;
  readonly cursor?: string;
  readonly limit: number;
}

/** One line of the results: the message, where it stands, and the last thing said of it. */
export interface MessageSummary {
  readonly queueId: string;
  readonly messageId: string | null;
  readonly tenant: string | null;
  readonly from: string;
  readonly recipients: readonly string[];
  readonly recipientCount: number;
  readonly status: TraceStatus | null;
  readonly acceptedAt: string;
  readonly updatedAt: string;
  /** The latest reply recorded for it: the upstream's own when it gave one, else the relay's. */
  readonly lastReply: string | null;
}

export interface SearchPage {
  readonly messages: readonly MessageSummary[];
  /** Where the next page starts; absent on the last page. */
  readonly next?: string;
}

/** The message a page ended with, as a cursor, and back. */
export const cursorOf = (queueId: string) => Buffer.from(`q.${queueId}`).toString('base64url');
export function parseCursor(cursor: string): string | undefined {
  return /^q\.([a-z0-9]{1,64})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'))?.[1];
}

const SHOWN_RECIPIENTS = 5;

/** Statements prepared once per store: a page runs a hundred small queries, and preparing each costs more than running it. */
const prepared = new WeakMap<DatabaseSync, Map<string, StatementSync>>();
function statement(db: DatabaseSync, sql: string): StatementSync {
  let cache = prepared.get(db);
  if (!cache) {
    cache = new Map();
    prepared.set(db, cache);
  }
  let found = cache.get(sql);
  if (!found) {
    found = db.prepare(sql);
    // The shapes of a search are few (a way, the filters given): the cache stays small.
    if (cache.size >= 200) cache.clear();
    cache.set(sql, found);
  }
  return found;
}

/** The page of messages a search asks for, newest first; `scope`: one tenant's mail only, whatever it asks. */
export function searchIn(db: DatabaseSync, search: MessageSearch, scope?: string): SearchPage {
  const ways = waysOf(search);
  // Each way walks its index; an address may be a recipient or a sender: both walks, merged.
  const found = new Map<string, Row>();
  for (const way of ways) for (const row of walk(db, way, search, scope)) found.set(String(row.queue_id), row);
  const rows = [...found.values()].sort((a, b) => (String(a.queue_id) < String(b.queue_id) ? 1 : -1)).slice(0, search.limit + 1);
  const page = rows.slice(0, search.limit);
  const last = page.at(-1);
  return { messages: page.map((m) => summaryOf(db, m)), ...(rows.length > search.limit && last ? { next: cursorOf(String(last.queue_id)) } : {}) };
}

/** Results of several stores (one per worker), as one page. */
export function mergePages(pages: readonly SearchPage[], limit: number): SearchPage {
  const all = pages.flatMap((p) => p.messages).sort((a, b) => (a.queueId < b.queueId ? 1 : -1));
  const page = all.slice(0, limit);
  const last = page.at(-1);
  const more = all.length > limit || pages.some((p) => p.next !== undefined);
  return { messages: page, ...(more && last ? { next: cursorOf(last.queueId) } : {}) };
}

/** The search over the stores the relay keeps (one per worker), read without writing, as one page. */
export function searchTraces(files: readonly string[], search: MessageSearch, scope?: string): SearchPage {
  const { DatabaseSync } = sqlite();
  const pages: SearchPage[] = [];
  for (const file of files) {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      pages.push(searchIn(db, search, scope));
    } finally {
      db.close();
    }
  }
  return mergePages(pages, search.limit);
}

type Way = { readonly kind: 'recipient' | 'sender' | 'messageId' | 'queueId'; readonly value: string } | { readonly kind: 'all' };

/** How a search is answered: by the index of what it names, else by time. */
function waysOf(s: MessageSearch): Way[] {
  if (s.queueId) return [{ kind: 'queueId', value: s.queueId }];
  if (s.messageId) return [{ kind: 'messageId', value: s.messageId }];
  if (s.recipient) return [{ kind: 'recipient', value: s.recipient }];
  if (s.sender) return [{ kind: 'sender', value: s.sender }];
  const text = s.text?.trim();
  if (!text) return [{ kind: 'all' }];
  if (text.startsWith('<') && text.endsWith('>')) return [{ kind: 'messageId', value: text }];
  if (text.includes('@')) return [{ kind: 'recipient', value: text }, { kind: 'sender', value: text }, { kind: 'messageId', value: `<${text}>` }];
  return [{ kind: 'queueId', value: text.toLowerCase() }, { kind: 'messageId', value: `<${text}>` }];
}

function walk(db: DatabaseSync, way: Way, s: MessageSearch, scope: string | undefined): Row[] {
  const where: string[] = [];
  const values: (string | number)[] = [];
  const and = (condition: string, ...v: (string | number)[]) => {
    where.push(condition);
    values.push(...v);
  };
  let from = 'messages m';
  if (way.kind === 'recipient') {
    // The recipients table holds each message's time: the walk stays in its index, newest first.
    from = 'recipients r JOIN messages m ON m.queue_id = r.queue_id';
    and('r.recipient = ?', way.value);
  }
  if (way.kind === 'sender') and('m.mail_from = ? COLLATE NOCASE', way.value);
  if (way.kind === 'messageId') and('m.message_id = ?', way.value);
  if (way.kind === 'queueId') and('m.queue_id = ?', way.value);
  const id = way.kind === 'recipient' ? 'r.queue_id' : 'm.queue_id';
  if (scope !== undefined) and('m.tenant = ?', scope);
  if (s.tenant !== undefined) and('m.tenant = ?', s.tenant);
  // The exact words of the partial index's condition: SQLite uses it only when the query says them.
  if (s.status !== undefined) and(s.status === 'delivered' ? 'm.status = ?' : "m.status = ? AND m.status <> 'delivered'", s.status);
  if (s.since !== undefined) and('m.accepted_at >= ?', s.since);
  if (s.until !== undefined) and('m.accepted_at < ?', s.until);
  const cursor = s.cursor !== undefined ? parseCursor(s.cursor) : undefined;
  if (cursor !== undefined) and(`${id} < ?`, cursor);
  const sql = `SELECT m.*, d.text AS decision FROM ${from} LEFT JOIN decisions d ON d.id = m.decision_id ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${id} DESC LIMIT ?`;
  return statement(db, sql).all(...values, s.limit + 1) as Row[];
}

function summaryOf(db: DatabaseSync, m: Row): MessageSummary {
  const id = String(m.queue_id);
  // From its events (an index by message): every recipient has one once the message is accepted or answered.
  const recipients = (statement(db, 'SELECT DISTINCT recipient FROM events WHERE queue_id = ?').all(id) as Row[]).map((r) => String(r.recipient));
  const last = statement(db, 'SELECT reply, upstream_reply FROM events WHERE queue_id = ? ORDER BY at DESC, rowid DESC LIMIT 1').get(id) as Row | undefined;
  return {
    queueId: id,
    messageId: m.message_id === null ? null : String(m.message_id),
    tenant: m.tenant === null ? null : String(m.tenant),
    from: String(m.mail_from),
    recipients: recipients.slice(0, SHOWN_RECIPIENTS),
    recipientCount: recipients.length,
    status: (m.status ?? null) as TraceStatus | null,
    acceptedAt: new Date(Number(m.accepted_at)).toISOString(),
    updatedAt: new Date(Number(m.updated_at)).toISOString(),
    lastReply: last ? String(last.upstream_reply ?? last.reply) : null,
  };
}
