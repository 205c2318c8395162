// SendGrid's signed Event Webhook: a batch of events per request, signed with ECDSA (P-256, SHA-256) over
// the timestamp header and the raw body; the public key is the one SendGrid shows in the webhook's
// settings (base64 DER) (docs.sendgrid.com, "Getting Started with the Event Webhook Security
// Features"). Acted on: delivered, bounce (not a "blocked" one, which is the sending server's
// reputation, not the address), spamreport (a complaint).
import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { bracketed, MAX_SKEW_MS, type ProviderEvent, type ReplayGuard, type Verified } from './event.js';

export const SIGNATURE_HEADER = 'x-twilio-email-event-webhook-signature';
export const TIMESTAMP_HEADER = 'x-twilio-email-event-webhook-timestamp';
/** Events of one request acted on, at most (SendGrid batches up to a few thousand). */
const MAX_EVENTS = 10_000;

/** The verification key from its base64 DER (SPKI), as SendGrid shows it; undefined when it is not one. */
export function sendgridKey(base64: string): KeyObject | undefined {
  try {
    return createPublicKey({ key: Buffer.from(base64, 'base64'), format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

export function verifySendgrid(raw: Buffer, body: unknown, headers: Record<string, string | string[] | undefined>, key: KeyObject, seen: ReplayGuard, now: number): Verified {
  const signature = headers[SIGNATURE_HEADER];
  const timestamp = headers[TIMESTAMP_HEADER];
  if (typeof signature !== 'string' || typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp) || signature.length > 200) return { ok: false, why: 'no signature' };
  if (!verifies(Buffer.concat([Buffer.from(timestamp), raw]), key, signature)) return { ok: false, why: 'bad signature' };
  if (Math.abs(now - Number(timestamp) * 1000) > MAX_SKEW_MS) return { ok: false, why: 'stale timestamp' };
  if (!seen.fresh(`sendgrid:${signature}`, now)) return { ok: false, why: 'replayed' };
  if (!Array.isArray(body)) return { ok: false, why: 'not a list of events' };
  const events: ProviderEvent[] = [];
  let ignored = 0;
  for (const item of body.slice(0, MAX_EVENTS) as Record<string, unknown>[]) {
    const type = item?.event === 'delivered' ? 'delivered' : item?.event === 'bounce' && item.type !== 'blocked' ? 'bounced' : item?.event === 'spamreport' ? 'complained' : undefined;
    if (!type || typeof item.email !== 'string') {
      ignored++;
      continue;
    }
    const messageId = bracketed(typeof item['smtp-id'] === 'string' ? item['smtp-id'] : undefined);
    const reason = [item.status, item.reason].filter((x) => typeof x === 'string').join(' ');
    events.push({
      provider: 'sendgrid',
      type,
      recipient: item.email.toLowerCase(),
      ...(messageId ? { messageId } : {}),
      reason: reason || `sendgrid: ${type}`,
      at: typeof item.timestamp === 'number' && Number.isFinite(item.timestamp) ? item.timestamp * 1000 : now,
    });
  }
  return { ok: true, events, ignored: ignored + Math.max(0, body.length - MAX_EVENTS) };
}

/** A malformed signature (not DER) is a bad one, not an error. */
function verifies(data: Buffer, key: KeyObject, signature: string): boolean {
  try {
    return verify('sha256', data, key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
