// The mail console on the ops listener: "did my email go out?" answered from the trace and the queue,
// for the platform's support desk and each tenant's admin. A JSON API (search, one message's timeline,
// the queue; retry, hold, release and delete; a send-test through a tenant's route) and a page that uses
// it (ops/console-page.ts). Reading
// needs the trace scope, the queue and its actions the queue scope; a tenant's token sees and acts on its
// own tenant's mail only, whatever it asks (another tenant's message is "not found", not "forbidden").
import type { Config } from '../../config/types.js';
import { sanitizeUpstreamText } from '../errors.js';
import type { SendTestRecord } from '../observe/send-tests.js';
import { SAMPLE_KINDS, type SampleKind } from '../ops/samples.js';
import type { Logger } from '../log.js';
import { consolePage } from '../ops/console-page.js';
import type { OpsAnswer, OpsRequest, OpsRoute } from '../ops/http.js';
import { pendingRecipients } from '../queue/entry.js';
import type { Listed, QueueView } from '../queue/queue-view.js';
import { QueueRequests } from '../queue/requests.js';
import { REQUEST_KINDS, type RequestKind } from '../queue/spool-layout.js';
import { TRACE_STATUSES, type TracedMessage, type TraceStatus } from '../reporting/trace-read.js';
import { type MessageSearch, parseCursor, type SearchPage } from '../reporting/trace-search.js';
import { suppressionOf, type SuppressionStore } from '../suppression/store.js';
import { sampleSender, sendSample } from './send-sample.js';

export interface ConsoleBackend {
  /** The trace's search and one message (this relay's, or every worker's); undefined with the trace off. */
  readonly trace?: {
    search(search: MessageSearch, scope?: string): Promise<SearchPage> | SearchPage;
    message(queueId: string, scope?: string): Promise<TracedMessage | undefined> | TracedMessage | undefined;
  };
  /** The queue: this relay's own, or each worker's spool under the configured path. */
  readonly queue: QueueView;
  /** Applies the requests just left: this relay at once; workers at their next scan. */
  applyRequests(): Promise<void>;
  readonly logger: Logger;
  /** The snapshot in force (a send-test's tenant and listener). */
  config(): Config;
  /** Where the first SMTP listener is bound (a send-test goes through it). */
  smtpPort(): number | undefined;
  sendTestOutcome(token: string): Promise<SendTestRecord | undefined>;
  /** Addresses each tenant's mail does not go to. */
  suppression(): SuppressionStore;
}

const MAX_LIMIT = 200;
const MAX_TEXT = 320;

export function consoleRoutes(b: ConsoleBackend): OpsRoute[] {
  return [
    { path: '/console', methods: ['GET'], handle: async () => consolePage('page') },
    { path: '/console/', methods: ['GET'], handle: async (req) => consolePage(req.path.slice('/console/'.length)) },
    { path: '/api/messages', scope: 'trace', methods: ['GET'], handle: (req) => search(b, req) },
    { path: '/api/messages/', scope: 'trace', methods: ['GET'], handle: (req) => message(b, req) },
    { path: '/api/queue', scope: 'queue', methods: ['GET'], handle: (req) => queue(b, req) },
    { path: '/api/queue/', scope: 'queue', methods: ['POST'], handle: (req) => act(b, req) },
    { path: '/api/send-test', scope: 'queue', methods: ['POST'], handle: (req) => sendTest(b, req) },
    { path: '/api/suppressions', scope: 'queue', methods: ['GET', 'POST'], handle: (req) => suppressions(b, req) },
    { path: '/api/suppressions/remove', scope: 'queue', methods: ['POST'], handle: (req) => unsuppress(b, req) },
    { path: '/api/send-test/', scope: 'queue', methods: ['GET'], handle: (req) => sendTestOutcome(b, req) },
  ];
}

const bad = (error: string): OpsAnswer => ({ status: 400, body: { error } });
const notFound = (id: string): OpsAnswer => ({ status: 404, body: { error: `no message ${id}` } });
const QUEUE_ID = /^[a-z0-9]{1,64}$/;

async function search(b: ConsoleBackend, req: OpsRequest): Promise<OpsAnswer> {
  if (!b.trace) return { status: 404, body: { error: 'the trace is off (trace.enabled: false)' } };
  const q = req.query;
  const text = (key: string) => {
    const v = q.get(key)?.trim();
    return v ? v.slice(0, MAX_TEXT) : undefined;
  };
  const status = text('status');
  if (status !== undefined && !TRACE_STATUSES.includes(status as TraceStatus)) return bad(`status must be one of: ${TRACE_STATUSES.join(', ')}`);
  const cursor = text('cursor');
  if (cursor !== undefined && !parseCursor(cursor)) return bad('cursor is not one this relay gave');
  const [since, until] = [time(text('since')), time(text('until'))];
  if (Number.isNaN(since) || Number.isNaN(until)) return bad('since and until are times like 2026-12-04T10:00:00Z (or milliseconds since the epoch)');
  const limit = Math.min(MAX_LIMIT, Math.max(1, Number(q.get('limit') ?? 50) || 50));
  const asked: MessageSearch = {
    limit,
    ...defined({ text: text('q'), recipient: text('rcpt'), sender: text('from'), messageId: text('message-id'), queueId: text('queue-id'), tenant: text('tenant'), cursor }),
    ...(status !== undefined ? { status: status as TraceStatus } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(until !== undefined ? { until } : {}),
  };
  const started = performance.now();
  const page = await b.trace.search(asked, req.access.tenant);
  return { status: 200, body: { ...page, ms: Math.round((performance.now() - started) * 10) / 10 } };
}

async function message(b: ConsoleBackend, req: OpsRequest): Promise<OpsAnswer> {
  const id = req.path.slice('/api/messages/'.length);
  if (!QUEUE_ID.test(id)) return notFound(sanitizeUpstreamText(id, 64));
  const traced = b.trace ? await b.trace.message(id, req.access.tenant) : undefined;
  const queued = await b.queue.find(id);
  const mine = queued && (req.access.tenant === undefined || queued.entry.tenant === req.access.tenant) ? queued : undefined;
  if (!traced && !mine) return notFound(id);
  return { status: 200, body: { message: traced ?? null, queued: mine ? queuedView(mine) : null } };
}

async function queue(b: ConsoleBackend, req: OpsRequest): Promise<OpsAnswer> {
  const area = req.query.get('area') === 'failed' ? 'failed' : 'queue';
  const tenant = req.access.tenant ?? (req.query.get('tenant') || undefined);
  const listed = (await b.queue.list(area)).filter((l) => tenant === undefined || l.entry.tenant === tenant);
  const limit = Math.min(MAX_LIMIT, Math.max(1, Number(req.query.get('limit') ?? 100) || 100));
  // Oldest first: what has waited longest is what someone will ask about.
  listed.sort((x, y) => x.entry.createdAt - y.entry.createdAt || (x.id < y.id ? -1 : 1));
  const after = req.query.get('after');
  const start = after ? listed.findIndex((l) => l.id === after) + 1 : 0;
  const page = listed.slice(start, start + limit);
  const last = page.at(-1);
  return { status: 200, body: { total: listed.length, messages: page.map(queuedView), ...(start + limit < listed.length && last ? { next: last.id } : {}) } };
}

async function act(b: ConsoleBackend, req: OpsRequest): Promise<OpsAnswer> {
  const [id = '', action = ''] = req.path.slice('/api/queue/'.length).split('/');
  if (!QUEUE_ID.test(id)) return notFound(sanitizeUpstreamText(id, 64));
  if (!REQUEST_KINDS.includes(action as RequestKind)) return bad(`the action must be one of: ${REQUEST_KINDS.join(', ')}`);
  const found = await b.queue.find(id);
  if (!found || found.area !== 'queue' || (req.access.tenant !== undefined && found.entry.tenant !== req.access.tenant)) return notFound(id);
  const by = `console: ${req.access.by ?? 'open'}`;
  await new QueueRequests(found.spool.layout).leave(id, action as RequestKind, by);
  b.logger.info({ event: 'console-action', action, id, tenant: found.entry.tenant, by });
  await b.applyRequests();
  const after = await b.queue.find(id);
  return { status: 200, body: { requested: action, id, queued: after ? queuedView(after) : null } };
}

/**
 * A sample (send-test) through the tenant's route, to one address: the platform's own content, never the
 * caller's, so the endpoint cannot carry anyone's mail. A tenant's token sends for its own tenant only.
 */
async function sendTest(b: ConsoleBackend, req: OpsRequest): Promise<OpsAnswer> {
  const body = (req.body ?? {}) as { tenant?: unknown; to?: unknown; kind?: unknown };
  const config = b.config();
  const id = req.access.tenant ?? (typeof body.tenant === 'string' ? body.tenant : '');
  const tenant = config.directory.byId(id);
  if (!tenant || (req.access.tenant !== undefined && tenant.id !== req.access.tenant)) return { status: 404, body: { error: `no tenant ${sanitizeUpstreamText(id, 64)}` } };
  const kind = body.kind === undefined ? 'password-reset' : body.kind;
  if (!SAMPLE_KINDS.includes(kind as SampleKind)) return bad(`kind must be one of: ${SAMPLE_KINDS.join(', ')}`);
  if (typeof body.to !== 'string' || !/^[^\s@<>,;]{1,64}@[^\s@<>,;]{1,255}$/.test(body.to)) return bad('to must be one address, like someone@example.com');
  const from = sampleSender(tenant);
  if (!from) return bad(`tenant ${tenant.id} claims no address or domain to send the sample as`);
  const port = b.smtpPort();
  const sent = await sendSample(config, { tenant, from, to: body.to, kind: kind as SampleKind, ...(port !== undefined ? { port } : {}) });
  b.logger.info({ event: 'console-action', action: 'send-test', tenant: tenant.id, by: `console: ${req.access.by ?? 'open'}`, ...(sent.ok ? { token: sent.token } : {}) });
  return sent.ok ? { status: 200, body: { token: sent.token, reply: sent.reply } } : { status: 502, body: { error: sanitizeUpstreamText(sent.error) } };
}

async function sendTestOutcome(b: ConsoleBackend, req: OpsRequest): Promise<OpsAnswer> {
  const token = /^\/api\/send-test\/([A-Za-z0-9-]{8,64})$/.exec(req.path)?.[1];
  const found = token ? await b.sendTestOutcome(token).catch(() => undefined) : undefined;
  // Its own tenant's only: a token of another tenant is told nothing, not even that it exists.
  if (!found || (req.access.tenant !== undefined && found.tenant !== req.access.tenant)) return { status: 404, body: { pending: true } };
  return { status: 200, body: found };
}

/**
 * A tenant's suppressed addresses (GET, a page at a time), or one added by hand (POST {tenant, address,
 * reason, days}). A tenant's token: its own tenant's, whatever it names.
 */
async function suppressions(b: ConsoleBackend, req: OpsRequest): Promise<OpsAnswer> {
  const now = Date.now();
  if (req.method === 'GET') {
    const tenant = req.access.tenant ?? req.query.get('tenant') ?? undefined;
    const after = req.query.get('after') ?? undefined;
    const prefix = req.query.get('q')?.trim().slice(0, MAX_TEXT) || undefined;
    const limit = Math.min(MAX_LIMIT, Math.max(1, Number(req.query.get('limit') ?? 100) || 100));
    const entries = await b.suppression().list({ ...(tenant !== undefined ? { tenant } : {}), ...(after ? { after } : {}), ...(prefix ? { prefix } : {}), limit, now });
    const last = entries.at(-1);
    return { status: 200, body: { suppressions: entries, ...(entries.length === limit && last ? { next: tenant !== undefined ? last.address : `${last.tenant} ${last.address}` } : {}) } };
  }
  const body = (req.body ?? {}) as { tenant?: unknown; address?: unknown; reason?: unknown; days?: unknown };
  const tenant = req.access.tenant ?? (typeof body.tenant === 'string' ? body.tenant : undefined);
  if (tenant === undefined || (tenant !== '' && !b.config().directory.byId(tenant))) return { status: 404, body: { error: 'no such tenant' } };
  if (typeof body.address !== 'string' || !/^[^\s@<>,;]{1,64}@[^\s@<>,;]{1,255}$/.test(body.address)) return bad('address must be one address, like someone@example.com');
  const days = body.days === undefined ? undefined : Number(body.days);
  if (days !== undefined && !(days > 0 && days <= 3650)) return bad('days must be a number from 1 to 3650');
  const expiresAt = now + (days !== undefined ? days * 86_400_000 : suppressionOf(b.config(), tenant || null).expiryMs);
  const reason = typeof body.reason === 'string' && body.reason.trim() ? body.reason : 'added by hand';
  const by = `console: ${req.access.by ?? 'open'}`;
  await b.suppression().add({ tenant, address: body.address, reason: sanitizeUpstreamText(`${reason} (${by})`, 300), source: 'hand', at: now, expiresAt });
  b.logger.info({ event: 'console-action', action: 'suppress', tenant, address: body.address.toLowerCase(), by });
  return { status: 200, body: { suppressed: body.address.toLowerCase(), until: new Date(expiresAt).toISOString() } };
}

async function unsuppress(b: ConsoleBackend, req: OpsRequest): Promise<OpsAnswer> {
  const body = (req.body ?? {}) as { tenant?: unknown; address?: unknown };
  const tenant = req.access.tenant ?? (typeof body.tenant === 'string' ? body.tenant : undefined);
  if (tenant === undefined || typeof body.address !== 'string') return bad('tenant and address are required');
  const removed = await b.suppression().remove(tenant, body.address);
  b.logger.info({ event: 'console-action', action: 'unsuppress', tenant, address: body.address.toLowerCase().slice(0, 320), by: `console: ${req.access.by ?? 'open'}`, removed });
  return { status: removed ? 200 : 404, body: { removed } };
}

/** What the console shows of a queued message: where it stands, why it waits, until when. */
function queuedView(l: Listed) {
  const e = l.entry;
  return {
    queueId: e.id,
    area: l.area,
    tenant: e.tenant,
    from: e.mailFrom,
    messageId: e.messageId ?? null,
    createdAt: new Date(e.createdAt).toISOString(),
    attempts: e.attempts,
    nextAttemptAt: e.onHold ? null : new Date(e.nextAttemptAt).toISOString(),
    onHold: e.onHold ? { since: new Date(e.onHold.since).toISOString() } : null,
    heldBy: l.hold && l.hold.until > Date.now() ? { reason: l.hold.reason, until: new Date(l.hold.until).toISOString() } : null,
    lastError: e.lastError ?? null,
    pending: pendingRecipients(e),
    recipients: e.recipients.map((r) => ({ address: r.address, status: r.status, reply: r.reply ?? null, upstreamReply: r.upstreamReply ?? null })),
  };
}

/** A time from the query: ISO 8601 or milliseconds; undefined when not given, NaN when not a time. */
function time(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  return /^\d{1,15}$/.test(value) ? Number(value) : Date.parse(value);
}

function defined<T extends Record<string, string | undefined>>(values: T): { [K in keyof T]?: string } {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: string };
}
