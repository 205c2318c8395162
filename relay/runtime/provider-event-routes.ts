// The smarthost provider's event webhooks on the ops listener (providerEvents): open, because a provider
// cannot carry a bearer token, and trusted only through its own signature (reporting/provider-events/).
// Each event is linked to the message it is about by its Message-ID in the trace, and to the recipient
// that message had: then it is a delivery event of that message (webhook, trace), and a bounce or a
// complaint suppresses the address for the message's tenant. An event for a message this relay did not
// send is counted and never linked; a request whose signature fails is refused (401) and counted.
import type { Config } from '../../config/types.js';
import { sanitizeUpstreamText } from '../errors.js';
import type { Logger } from '../log.js';
import type { Outcomes } from '../observe/outcomes.js';
import type { OpsAnswer, OpsRequest, OpsRoute } from '../ops/http.js';
import type { RelayMetrics } from '../ops/metrics.js';
import { type ProviderEvent, SeenTokens, type Verified } from '../reporting/provider-events/event.js';
import { verifyMailgun } from '../reporting/provider-events/mailgun.js';
import { sendgridKey, verifySendgrid } from '../reporting/provider-events/sendgrid.js';
import { SigningCertificates, verifySes } from '../reporting/provider-events/ses.js';
import type { TracedMessage, TraceQuery } from '../reporting/trace-read.js';
import type { ReportedRecipient } from '../suppression/bounce-report.js';
import { suppressionOf, type SuppressionStore, suppressionTenant } from '../suppression/store.js';

export interface ProviderEventsBackend {
  config(): Config;
  /** The traced messages a query finds (undefined: the trace is off). */
  readonly find: ((query: TraceQuery) => readonly TracedMessage[]) | undefined;
  readonly outcomes: Outcomes;
  readonly suppression: SuppressionStore;
  readonly metrics: RelayMetrics;
  readonly logger: Logger;
}

export function providerEventRoutes(b: ProviderEventsBackend): OpsRoute[] {
  const seen = new SeenTokens();
  const mailgun = (req: OpsRequest): Verified | undefined => {
    const key = b.config().providerEvents.mailgun?.signingKey;
    return key === undefined ? undefined : verifyMailgun(req.body, key, seen, Date.now());
  };
  const sendgrid = (req: OpsRequest): Verified | undefined => {
    const given = b.config().providerEvents.sendgrid?.publicKey;
    const key = given === undefined ? undefined : sendgridKey(given);
    return key === undefined ? undefined : verifySendgrid(req.rawBody, req.body, req.headers, key, seen, Date.now());
  };
  const certificates = new SigningCertificates();
  const ses = async (req: OpsRequest): Promise<Verified | undefined> => {
    const settings = b.config().providerEvents.ses;
    if (!settings) return undefined;
    const verified = await verifySes(req.body, settings, certificates, seen, Date.now());
    // Not followed by the relay (a URL from outside, even signed): the operator confirms the subscription.
    if (verified.ok && verified.subscribeUrl) b.logger.warn({ event: 'ses-subscription-confirmation', subscribeUrl: sanitizeUpstreamText(verified.subscribeUrl, 500) }, 'SNS asks to confirm the subscription: open subscribeUrl once (or confirm it in the SNS console)');
    return verified;
  };
  return [
    // SNS retries what is not answered 2xx: a signed notification is taken whole.
    { path: '/provider-events/ses', methods: ['POST'], maxBodyBytes: 256 * 1024, handle: async (req) => take(b, 'ses', await ses(req), 200) },
    // Mailgun does not retry an event answered 406: an event for mail this relay did not send is not worth another try.
    { path: '/provider-events/mailgun', methods: ['POST'], maxBodyBytes: 256 * 1024, handle: (req) => take(b, 'mailgun', mailgun(req), 406) },
    // SendGrid retries a batch for a day on any other answer: one it has signed is taken whole.
    { path: '/provider-events/sendgrid', methods: ['POST'], maxBodyBytes: 8 * 1024 * 1024, handle: (req) => take(b, 'sendgrid', sendgrid(req), 200) },
  ];
}

async function take(b: ProviderEventsBackend, provider: string, verified: Verified | undefined, noneMatched: number): Promise<OpsAnswer> {
  if (!verified) return { status: 404, body: { error: `providerEvents.${provider} is not configured` } };
  const count = (result: string, n = 1) => n > 0 && b.metrics.providerEvents.inc({ provider, result }, n);
  if (!verified.ok) {
    count('refused');
    b.logger.warn({ event: 'provider-event-refused', provider, why: verified.why }, 'a provider event was refused: its signature did not verify, or it was stale or replayed');
    return { status: 401, body: { error: verified.why } };
  }
  count('ignored', verified.ignored);
  let matched = 0;
  for (const event of verified.events) {
    const message = messageOf(b, event);
    if (!message) {
      count('unmatched');
      continue;
    }
    matched++;
    count('matched');
    await take1(b, event, message);
  }
  const unmatched = verified.events.length - matched;
  if (unmatched > 0) b.logger.info({ event: 'provider-events-unmatched', provider, unmatched }, 'provider events for messages this relay has no record of (older than the trace, or not sent by it): counted, not linked');
  return { status: matched === 0 && verified.events.length > 0 ? noneMatched : 200, body: { matched, unmatched, ignored: verified.ignored } };
}

/** The message an event is about: its Message-ID in the trace, with that recipient among its own. */
function messageOf(b: ProviderEventsBackend, event: ProviderEvent): TracedMessage | undefined {
  if (!event.messageId || !b.find) return undefined;
  return b.find({ messageId: event.messageId }).find((m) => hadRecipient(m, event.recipient));
}

/** Only a recipient the message had: a report cannot name anyone else. */
const hadRecipient = (m: TracedMessage, recipient: string) => m.events.some((e) => e.recipient.toLowerCase() === recipient);

/**
 * A report that came back by mail (inbound/bounce-listener.ts) for the message its return path names:
 * each recipient that message had is linked as a provider's event is; the rest is counted. How many were linked.
 */
export async function takeBounceReport(b: ProviderEventsBackend, queueId: string, reported: readonly ReportedRecipient[]): Promise<number> {
  const message = b.find?.({ queueId })[0];
  let linked = 0;
  for (const r of reported) {
    if (!message || !hadRecipient(message, r.recipient)) continue;
    await take1(b, { provider: 'bounce-mail', type: r.type, recipient: r.recipient, reason: r.reason, at: Date.now() }, message);
    linked++;
  }
  b.metrics.providerEvents.inc({ provider: 'bounce-mail', result: 'matched' }, linked);
  b.metrics.providerEvents.inc({ provider: 'bounce-mail', result: 'unmatched' }, reported.length - linked);
  return linked;
}

/** One event, linked to its message: a delivery event of it, and a suppression for a bounce or complaint. */
async function take1(b: ProviderEventsBackend, event: ProviderEvent, m: TracedMessage): Promise<void> {
  const reason = sanitizeUpstreamText(event.reason, 300);
  const message = { id: m.queueId, tenant: m.tenant, mode: m.mode, mailFrom: m.from, ...(m.messageId ? { messageId: m.messageId } : {}), acceptedAt: Date.parse(m.acceptedAt) };
  // When the relay heard it: the provider's own clock (whole seconds for SendGrid) may put it before the
  // message's own delivery in the trace.
  b.outcomes.emit('reported', { message, at: Math.max(Date.now(), event.at), recipient: event.recipient, type: event.type, provider: event.provider, reason });
  const policy = suppressionOf(b.config(), m.tenant);
  if (event.type === 'delivered' || !policy.enabled) return;
  const now = Date.now();
  await b.suppression
    .add({ tenant: suppressionTenant(m.tenant), address: event.recipient, reason: `${event.provider}: ${reason}`, source: event.type === 'complained' ? 'complaint' : 'provider', at: now, expiresAt: now + policy.expiryMs })
    .catch(() => undefined);
}
