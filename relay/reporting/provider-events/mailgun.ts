// Mailgun's event webhooks: one event per request, signed with an HMAC-SHA256 of timestamp + token under
// the account's webhook signing key (documentation.mailgun.com, "Securing Webhooks"). A request whose
// signature does not verify, whose timestamp is over 15 minutes off, or whose token was seen already is
// refused. Acted on: delivered, failed with severity permanent (a bounce), complained.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { bracketed, MAX_SKEW_MS, type ProviderEvent, type ReplayGuard, type Verified } from './event.js';

interface MailgunBody {
  signature?: { timestamp?: unknown; token?: unknown; signature?: unknown };
  'event-data'?: {
    event?: unknown;
    severity?: unknown;
    recipient?: unknown;
    timestamp?: unknown;
    message?: { headers?: { 'message-id'?: unknown } };
    'delivery-status'?: { code?: unknown; message?: unknown; description?: unknown };
    reason?: unknown;
  };
}

export function verifyMailgun(body: unknown, signingKey: string, seen: ReplayGuard, now: number): Verified {
  const b = (body ?? {}) as MailgunBody;
  const { timestamp, token, signature } = b.signature ?? {};
  if (typeof timestamp !== 'string' || typeof token !== 'string' || typeof signature !== 'string' || !/^\d{1,12}$/.test(timestamp) || token.length > 200) return { ok: false, why: 'no signature' };
  const wanted = Buffer.from(createHmac('sha256', signingKey).update(timestamp + token).digest('hex'));
  const given = Buffer.from(signature);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) return { ok: false, why: 'bad signature' };
  if (Math.abs(now - Number(timestamp) * 1000) > MAX_SKEW_MS) return { ok: false, why: 'stale timestamp' };
  if (!seen.fresh(`mailgun:${token}`, now)) return { ok: false, why: 'replayed' };
  const e = b['event-data'] ?? {};
  const type = e.event === 'delivered' ? 'delivered' : e.event === 'failed' && e.severity === 'permanent' ? 'bounced' : e.event === 'complained' ? 'complained' : undefined;
  if (!type || typeof e.recipient !== 'string') return { ok: true, events: [], ignored: 1 };
  const status = e['delivery-status'] ?? {};
  const reason = [status.code, status.message || status.description || e.reason].filter((x) => typeof x === 'string' || typeof x === 'number').join(' ');
  const messageId = bracketed(typeof e.message?.headers?.['message-id'] === 'string' ? e.message.headers['message-id'] : undefined);
  const event: ProviderEvent = {
    provider: 'mailgun',
    type,
    recipient: e.recipient.toLowerCase(),
    ...(messageId ? { messageId } : {}),
    reason: reason || `mailgun: ${type}`,
    at: typeof e.timestamp === 'number' && Number.isFinite(e.timestamp) ? Math.round(e.timestamp * 1000) : now,
  };
  return { ok: true, events: [event], ignored: 0 };
}
