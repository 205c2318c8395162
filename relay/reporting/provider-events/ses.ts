// Amazon SES notifications through SNS: the SNS message is signed (SignatureVersion 1: SHA1withRSA, 2:
// SHA256withRSA) with a certificate SNS names by URL; the relay fetches that certificate only over https
// from a host the config allows (default: sns.<region>.amazonaws.com) and checks the signature over the
// fields SNS documents, in their order (docs.aws.amazon.com/sns, "Verifying the signatures of Amazon SNS
// messages"). Only topics the config lists are taken. Inside: SES's Bounce (permanent only), Complaint
// and Delivery notifications, or the same as event publishing's eventType.
import { createVerify, X509Certificate } from 'node:crypto';
import { requestHttp } from '../../http-client.js';
import { bracketed, MAX_SKEW_MS, type ProviderEvent, type ReplayGuard, type Verified } from './event.js';

export interface SesSettings {
  readonly topicArns: readonly string[];
  /** Host patterns the signing certificate may come from; `*` stands for one DNS label. */
  readonly certificateHosts: readonly string[];
  /** PEM of a private CA for fetching the certificate (tests), in place of the system store. */
  readonly ca?: string;
}

interface SnsMessage {
  Type?: unknown;
  MessageId?: unknown;
  TopicArn?: unknown;
  Subject?: unknown;
  Message?: unknown;
  Timestamp?: unknown;
  SignatureVersion?: unknown;
  Signature?: unknown;
  SigningCertURL?: unknown;
  SubscribeURL?: unknown;
  Token?: unknown;
}

/** The fields SNS signs, in its order, as "name\nvalue\n" each. */
export function snsStringToSign(m: Record<string, unknown>): string {
  const names = m.Type === 'Notification' ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'] : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  return names.filter((n) => typeof m[n] === 'string').map((n) => `${n}\n${String(m[n])}\n`).join('');
}

/** Signing certificates fetched lately, by URL (SNS uses a handful). */
export class SigningCertificates {
  readonly #known = new Map<string, X509Certificate>();

  async get(url: string, settings: SesSettings): Promise<X509Certificate | undefined> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    // Only https, only from an allowed host, only a .pem: nothing else is ever fetched, and a host taken
    // off the list by a reload is not trusted through the cache either.
    if (parsed.protocol !== 'https:' || !parsed.pathname.endsWith('.pem') || !settings.certificateHosts.some((h) => hostMatches(parsed.hostname, h))) return undefined;
    const known = this.#known.get(url);
    if (known) return known;
    const answer = await requestHttp({ url: parsed, timeoutMs: 5000, maxBytes: 64 * 1024, ...(settings.ca !== undefined ? { ca: settings.ca } : {}) });
    if (answer.kind !== 'answered' || answer.status !== 200 || answer.truncated) return undefined;
    try {
      const cert = new X509Certificate(answer.body);
      if (this.#known.size >= 50) this.#known.clear();
      this.#known.set(url, cert);
      return cert;
    } catch {
      return undefined;
    }
  }
}

export async function verifySes(body: unknown, settings: SesSettings, certificates: SigningCertificates, seen: ReplayGuard, now: number): Promise<Verified & { subscribeUrl?: string }> {
  const m = (body ?? {}) as SnsMessage;
  if (typeof m.Signature !== 'string' || typeof m.SigningCertURL !== 'string' || typeof m.Timestamp !== 'string' || typeof m.MessageId !== 'string') return { ok: false, why: 'no signature' };
  if (typeof m.TopicArn !== 'string' || !settings.topicArns.includes(m.TopicArn)) return { ok: false, why: 'a topic not in providerEvents.ses.topicArns' };
  const cert = await certificates.get(m.SigningCertURL, settings);
  if (!cert) return { ok: false, why: 'signing certificate not from an allowed host, or not fetched' };
  const verifier = createVerify(m.SignatureVersion === '2' ? 'RSA-SHA256' : 'RSA-SHA1');
  verifier.update(snsStringToSign(m as Record<string, unknown>));
  let good = false;
  try {
    good = verifier.verify(cert.publicKey, Buffer.from(m.Signature, 'base64'));
  } catch {
    // A malformed signature is a bad one.
  }
  if (!good) return { ok: false, why: 'bad signature' };
  const at = Date.parse(m.Timestamp);
  if (!Number.isFinite(at) || Math.abs(now - at) > MAX_SKEW_MS) return { ok: false, why: 'stale timestamp' };
  if (!seen.fresh(`sns:${m.MessageId}`, now)) return { ok: false, why: 'replayed' };
  if (m.Type === 'SubscriptionConfirmation' && typeof m.SubscribeURL === 'string') return { ok: true, events: [], ignored: 1, subscribeUrl: m.SubscribeURL };
  if (m.Type !== 'Notification' || typeof m.Message !== 'string') return { ok: true, events: [], ignored: 1 };
  return sesEvents(m.Message, now);
}

interface SesNotification {
  notificationType?: unknown;
  eventType?: unknown;
  mail?: { commonHeaders?: { messageId?: unknown } };
  bounce?: { bounceType?: unknown; bouncedRecipients?: { emailAddress?: unknown; status?: unknown; diagnosticCode?: unknown }[] };
  complaint?: { complainedRecipients?: { emailAddress?: unknown }[]; complaintFeedbackType?: unknown };
  delivery?: { recipients?: unknown[]; smtpResponse?: unknown };
}

function sesEvents(text: string, now: number): Verified {
  let n: SesNotification;
  try {
    n = JSON.parse(text) as SesNotification;
  } catch {
    return { ok: true, events: [], ignored: 1 };
  }
  const kind = n.notificationType ?? n.eventType;
  const messageId = bracketed(typeof n.mail?.commonHeaders?.messageId === 'string' ? n.mail.commonHeaders.messageId : undefined);
  const base = { provider: 'ses', ...(messageId ? { messageId } : {}), at: now };
  const list = <T>(x: T[] | undefined) => (Array.isArray(x) ? x.slice(0, 1000) : []);
  if (kind === 'Bounce' && n.bounce?.bounceType === 'Permanent') {
    const events = list(n.bounce.bouncedRecipients).flatMap((r) => (typeof r?.emailAddress === 'string' ? [{ ...base, type: 'bounced' as const, recipient: r.emailAddress.toLowerCase(), reason: [r.status, r.diagnosticCode].filter((x) => typeof x === 'string').join(' ') || 'ses: permanent bounce' }] : []));
    return { ok: true, events, ignored: 0 };
  }
  if (kind === 'Complaint') {
    const feedback = typeof n.complaint?.complaintFeedbackType === 'string' ? n.complaint.complaintFeedbackType : 'complaint';
    const events = list(n.complaint?.complainedRecipients).flatMap((r) => (typeof r?.emailAddress === 'string' ? [{ ...base, type: 'complained' as const, recipient: r.emailAddress.toLowerCase(), reason: `ses: ${feedback}` }] : []));
    return { ok: true, events, ignored: 0 };
  }
  if (kind === 'Delivery') {
    const said = typeof n.delivery?.smtpResponse === 'string' ? n.delivery.smtpResponse : 'ses: delivered';
    const events: ProviderEvent[] = list(n.delivery?.recipients).flatMap((r) => (typeof r === 'string' ? [{ ...base, type: 'delivered' as const, recipient: r.toLowerCase(), reason: said }] : []));
    return { ok: true, events, ignored: 0 };
  }
  return { ok: true, events: [], ignored: 1 };
}

/** A hostname against a pattern where `*` is exactly one DNS label. */
function hostMatches(host: string, pattern: string): boolean {
  const h = host.toLowerCase().split('.');
  const p = pattern.toLowerCase().split('.');
  return h.length === p.length && p.every((label, i) => label === '*' ? /^[a-z0-9-]+$/.test(h[i] ?? '') : label === h[i]);
}
