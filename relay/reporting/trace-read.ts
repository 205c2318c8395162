// The message trace as it is read: what a query asks for and what it answers, from the store of this
// process (TraceStore.find) or, without writing, from the stores the relay keeps (one per worker), as
// `tenant-relay trace` and the workers' primary read them.
import type { DatabaseSync } from 'node:sqlite';
import type { DeliveryMode } from '../types.js';
import { sqlite } from '../sqlite.js';
import type { DeliveryEvent } from './delivery-events.js';

export interface TracedEvent {
  readonly time: string;
  readonly type: DeliveryEvent['type'];
  readonly recipient: string;
  readonly upstream: string | null;
  readonly attempt: number;
  readonly reply: string;
  readonly upstreamReply: string | null;
  readonly upstreamQueueId: string | null;
  readonly nextAttemptAt: string | null;
}

/** What became of a message, from its latest event: the words a support desk searches by. */
export const TRACE_STATUSES = ['queued', 'held', 'deferred', 'delivered', 'bounced', 'expired', 'deleted', 'suppressed', 'complained'] as const;
export type TraceStatus = (typeof TRACE_STATUSES)[number];
export const STATUS_OF_EVENT: Readonly<Record<DeliveryEvent['type'], TraceStatus>> = {
  accepted: 'queued',
  held: 'held',
  deferred: 'deferred',
  delivered: 'delivered',
  bounced: 'bounced',
  expired: 'expired',
  deleted: 'deleted',
  suppressed: 'suppressed',
  complained: 'complained',
};
/** Of events at the same moment, the later here is the message's status (a bounce needs a look most). */
export const STATUS_RANK = ',queued,delivered,suppressed,held,deferred,deleted,expired,bounced,complained,';

export interface TracedMessage {
  readonly queueId: string;
  readonly messageId: string | null;
  readonly tenant: string | null;
  readonly mode: DeliveryMode;
  readonly from: string;
  readonly size: number | null;
  readonly acceptedAt: string;
  /** Its latest event's status (null: a pass-through message not answered yet, or traced before statuses). */
  readonly status: TraceStatus | null;
  /** Why it went where it went (tenant, route), as decided at MAIL FROM. */
  readonly decision: string | null;
  readonly events: readonly TracedEvent[];
}

export type TraceQuery = { readonly queueId: string } | { readonly messageId: string } | { readonly recipient: string } | { readonly tenant: string };

export type Row = Record<string, string | number | null>;

export { sqlite } from '../sqlite.js';

/** Reads the stores the relay keeps (one per worker), without writing to them: newest messages first. */
export function findInTraces(files: readonly string[], query: TraceQuery, limit = 50, tenant?: string): TracedMessage[] {
  const { DatabaseSync } = sqlite();
  const found: TracedMessage[] = [];
  for (const file of files) {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      found.push(...findIn(db, query, limit, tenant));
    } finally {
      db.close();
    }
  }
  return found.sort((a, b) => (a.acceptedAt < b.acceptedAt ? 1 : a.acceptedAt > b.acceptedAt ? -1 : 0)).slice(0, limit);
}

export function findIn(db: DatabaseSync, query: TraceQuery, limit: number, tenant?: string): TracedMessage[] {
  const [asked, value] =
    'queueId' in query
      ? ['m.queue_id = ?', query.queueId]
      : 'messageId' in query
        ? ['m.message_id = ?', query.messageId]
        : 'tenant' in query
          ? ['m.tenant = ?', query.tenant]
          : ['m.queue_id IN (SELECT queue_id FROM recipients WHERE recipient = ?)', query.recipient];
  const where = tenant === undefined ? asked : `(${asked}) AND m.tenant = ?`;
  const values = tenant === undefined ? [value, limit] : [value, tenant, limit];
  const messages = db.prepare(`SELECT m.*, d.text AS decision FROM messages m LEFT JOIN decisions d ON d.id = m.decision_id WHERE ${where} ORDER BY m.accepted_at DESC LIMIT ?`).all(...values) as Row[];
  const events = db.prepare('SELECT * FROM events WHERE queue_id = ? ORDER BY at, attempt, rowid');
  return messages.map((m) => ({
    queueId: String(m.queue_id),
    messageId: m.message_id === null ? null : String(m.message_id),
    tenant: m.tenant === null ? null : String(m.tenant),
    mode: m.mode as DeliveryMode,
    from: String(m.mail_from),
    size: m.size === null ? null : Number(m.size),
    acceptedAt: new Date(Number(m.accepted_at)).toISOString(),
    status: (m.status ?? null) as TraceStatus | null,
    decision: m.decision === null || m.decision === undefined ? null : String(m.decision),
    events: (events.all(String(m.queue_id)) as Row[]).map((e) => ({
      time: new Date(Number(e.at)).toISOString(),
      type: e.type as DeliveryEvent['type'],
      recipient: String(e.recipient),
      upstream: e.upstream === null ? null : String(e.upstream),
      attempt: Number(e.attempt),
      reply: String(e.reply),
      upstreamReply: e.upstream_reply === null ? null : String(e.upstream_reply),
      upstreamQueueId: e.upstream_queue_id === null ? null : String(e.upstream_queue_id),
      nextAttemptAt: e.next_attempt_at === null ? null : new Date(Number(e.next_attempt_at)).toISOString(),
    })),
  }));
}
