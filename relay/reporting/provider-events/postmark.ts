// Postmark's webhooks: one event per request, unsigned. Postmark offers HTTP basic auth on the webhook URL
// (postmarkapp.com/developer/webhooks, "Protecting your webhook"), so a request without the configured
// user and password is refused; and, since a password can leak, an event links only through the metadata
// the relay signed on the way out (message/postmark-link.ts, read by the caller), never through what else
// it says. Acted on: Bounce of type HardBounce or BadEmailAddress (not soft, transient, DNS or blocked
// ones: they are not the address), SpamComplaint, Delivery.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ProviderEvent, ReplayGuard, Verified } from './event.js';

const HARD_BOUNCES = new Set(['HardBounce', 'BadEmailAddress']);

export interface PostmarkSettings {
  readonly username: string;
  readonly password: string;
}

/** The queue id the relay's signed link in an event's Metadata names (message/postmark-link.ts), if any. */
export type PostmarkLinkReader = (metadata: Record<string, unknown> | undefined) => string | undefined;

interface PostmarkBody {
  RecordType?: unknown;
  ID?: unknown;
  Type?: unknown;
  MessageID?: unknown;
  Email?: unknown;
  Recipient?: unknown;
  Description?: unknown;
  Details?: unknown;
  BouncedAt?: unknown;
  DeliveredAt?: unknown;
  Metadata?: Record<string, unknown>;
}

export function verifyPostmark(body: unknown, authorization: string | undefined, s: PostmarkSettings, linkOf: PostmarkLinkReader, seen: ReplayGuard, now: number): Verified {
  if (!authorized(authorization, s)) return { ok: false, why: authorization ? 'bad credentials' : 'no credentials' };
  const b = (body ?? {}) as PostmarkBody;
  const type = b.RecordType === 'Delivery' ? 'delivered' : b.RecordType === 'SpamComplaint' ? 'complained' : b.RecordType === 'Bounce' && typeof b.Type === 'string' && HARD_BOUNCES.has(b.Type) ? 'bounced' : undefined;
  const recipient = type === 'delivered' ? b.Recipient : b.Email;
  if (!type || typeof recipient !== 'string') return { ok: true, events: [], ignored: 1 };
  // Unsigned: the same event again is taken once (Postmark retries only what was not answered 200).
  const id = typeof b.ID === 'number' || typeof b.ID === 'string' ? String(b.ID) : String(b.MessageID);
  if (!seen.fresh(`postmark:${b.RecordType}:${id.slice(0, 100)}:${recipient.slice(0, 300)}`, now)) return { ok: false, why: 'replayed' };
  const queueId = linkOf(b.Metadata && typeof b.Metadata === 'object' ? b.Metadata : undefined);
  const at = Date.parse(String(type === 'delivered' ? b.DeliveredAt : b.BouncedAt));
  const reason = [b.Type, b.Details || b.Description].filter((x) => typeof x === 'string' && x !== '').join(' ');
  const event: ProviderEvent = {
    provider: 'postmark',
    type,
    recipient: recipient.toLowerCase(),
    ...(queueId ? { queueId } : {}),
    reason: reason || `postmark: ${type}`,
    at: Number.isFinite(at) ? at : now,
  };
  return { ok: true, events: [event], ignored: 0 };
}

/** Basic credentials compared in constant time (digests: the lengths differ). */
function authorized(header: string | undefined, s: PostmarkSettings): boolean {
  const m = /^Basic ([A-Za-z0-9+/=]{1,1000})$/.exec(header ?? '');
  if (!m?.[1]) return false;
  const digest = (x: string | Buffer) => createHash('sha256').update(x).digest();
  return timingSafeEqual(digest(Buffer.from(m[1], 'base64')), digest(`${s.username}:${s.password}`));
}
