// The question a trace answers, from the ops listener's query string (GET /trace?rcpt=..., /trace/<id>)
// or the command's options: one message by its queue id or Message-ID, or the recent messages of a
// recipient or a tenant.
import type { TracedMessage, TraceQuery } from './trace-read.js';

export const TRACE_KEYS = ['queue-id', 'message-id', 'rcpt', 'tenant'] as const;

export function traceQueryOf(get: (key: (typeof TRACE_KEYS)[number]) => string | undefined): TraceQuery | undefined {
  const queueId = get('queue-id');
  const messageId = get('message-id');
  const recipient = get('rcpt');
  const tenant = get('tenant');
  if (queueId) return { queueId };
  if (messageId) return { messageId };
  if (recipient) return { recipient };
  if (tenant) return { tenant };
  return undefined;
}

/**
 * GET /trace and /trace/<queue id> on the ops listener: `find` searches this relay's trace (or, with
 * workers, every worker's); undefined when the trace is off.
 */
export async function traceAnswer(
  find: ((query: TraceQuery, limit: number, tenant?: string) => Promise<TracedMessage[]> | TracedMessage[]) | undefined,
  req: { path: string; query: URLSearchParams; access?: { tenant?: string } },
): Promise<{ status: number; body: unknown }> {
  if (!find) return { status: 404, body: { error: 'the trace is off (trace.enabled: false)' } };
  const params = req.path.startsWith('/trace/') ? new URLSearchParams({ 'queue-id': decodeURIComponent(req.path.slice('/trace/'.length)) }) : req.query;
  const query = traceQueryOf((key) => params.get(key) ?? undefined);
  if (!query) return { status: 400, body: { error: `ask by one of: ${TRACE_KEYS.join(', ')} (e.g. /trace?rcpt=someone@example.com, /trace/<queue id>)` } };
  const limit = Math.min(500, Math.max(1, Number(params.get('limit') ?? 50) || 50));
  // A tenant's token finds its own tenant's mail and nothing else, whatever it asks by.
  const tenant = req.access?.tenant;
  if (tenant !== undefined && 'tenant' in query && query.tenant !== tenant) return { status: 403, body: { error: `this token sees tenant ${tenant}'s mail only` } };
  return { status: 200, body: { messages: await find(query, limit, tenant) } };
}
