// The smarthost provider's event webhooks on the ops listener (providerEvents): open, because a provider
// cannot carry a bearer token, and trusted only through its own signature (reporting/provider-events/;
// Postmark, which signs nothing: its basic auth, and the relay's own signed link in its metadata).
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
import { guardFor, type ProviderEvent, type ReplayGuard, SeenTokens, type Verified } from '../reporting/provider-events/event.js';
import { verifyMailgun } from '../reporting/provider-events/mailgun.js';
import { verifyPostmark } from '../reporting/provider-events/postmark.js';
import { POSTMARK_METADATA_KEY, queueIdOfPostmarkLink } from '../message/postmark-link.js';
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

/**
 * Where verified events and bounce reports go to be linked: this process's trace (one relay), or every
 * worker's (the primary asks them; each links what its own trace holds). Counts go through `count`, so a
 * fleet of workers counts each event once.
 */
export interface EventLinker {
  config(): Config;
  readonly logger: Logger;
  count(provider: string, result: string, n: number): void;
  /** Per event, whether a message of this relay took it. */
  link(events: readonly ProviderEvent[]): Promise<boolean[]>;
  /** How many of a report's recipients the message `queueId` (its return path's) took. */
  linkBounce(queueId: string, reported: readonly ReportedRecipient[]): Promise<number>;
}

/** The linker of one relay process, over its own trace, outcomes and suppression store. */
export function localLinker(b: ProviderEventsBackend): EventLinker {
  return {
    config: b.config,
    logger: b.logger,
    count: (provider, result, n) => n > 0 && b.metrics.providerEvents.inc({ provider, result }, n),
    link: (events) => linkEvents(b, events),
    linkBounce: (queueId, reported) => linkBounceReport(b, queueId, reported),
  };
}

export function providerEventRoutes(b: EventLinker): OpsRoute[] {
  const seen = new SeenTokens();
  type Verify = (req: OpsRequest, guard: ReplayGuard) => Verified | undefined | Promise<Verified | undefined>;
  const mailgun: Verify = (req, guard) => {
    const key = b.config().providerEvents.mailgun?.signingKey;
    return key === undefined ? undefined : verifyMailgun(req.body, key, guard, Date.now());
  };
  const sendgrid: Verify = (req, guard) => {
    const given = b.config().providerEvents.sendgrid?.publicKey;
    const key = given === undefined ? undefined : sendgridKey(given);
    return key === undefined ? undefined : verifySendgrid(req.rawBody, req.body, req.headers, key, guard, Date.now());
  };
  const postmark: Verify = (req, guard) => {
    const settings = b.config().providerEvents.postmark;
    if (settings === undefined) return undefined;
    const linkOf = (metadata: Record<string, unknown> | undefined) => queueIdOfPostmarkLink(metadata?.[POSTMARK_METADATA_KEY], settings.signingKey);
    return verifyPostmark(req.body, req.headers.authorization, settings, linkOf, guard, Date.now());
  };
  const certificates = new SigningCertificates();
  const ses: Verify = async (req, guard) => {
    const settings = b.config().providerEvents.ses;
    if (!settings) return undefined;
    const verified = await verifySes(req.body, settings, certificates, guard, Date.now());
    // Not followed by the relay (a URL from outside, even signed): the operator confirms the subscription.
    if (verified.ok && verified.subscribeUrl) b.logger.warn({ event: 'ses-subscription-confirmation', subscribeUrl: sanitizeUpstreamText(verified.subscribeUrl, 500) }, 'SNS asks to confirm the subscription: open subscribeUrl once (or confirm it in the SNS console)');
    return verified;
  };
  const route = (provider: string, verify: Verify, noneMatched: number, maxBodyBytes = 256 * 1024): OpsRoute => ({
    path: `/provider-events/${provider}`,
    methods: ['POST'],
    maxBodyBytes,
    handle: async (req) => {
      const guard = guardFor(seen);
      return take(b, provider, await verify(req, guard), noneMatched, guard);
    },
  });
  return [
    // SNS retries what is not answered 2xx: a signed notification is taken whole.
    route('ses', ses, 200),
    // Mailgun does not retry an event answered 406: an event for mail this relay did not send is not worth another try.
    route('mailgun', mailgun, 406),
    // Postmark retries what is not answered 200 (for hours): an event it sent with the right credentials is taken whole.
    route('postmark', postmark, 200),
    // SendGrid retries a batch for a day on any other answer: one it has signed is taken whole.
    route('sendgrid', sendgrid, 200, 8 * 1024 * 1024),
  ];
}

async function take(b: EventLinker, provider: string, verified: Verified | undefined, noneMatched: number, guard: { undo(): void }): Promise<OpsAnswer> {
  if (!verified) return { status: 404, body: { error: `providerEvents.${provider} is not configured` } };
  if (!verified.ok) {
    b.count(provider, 'refused', 1);
    b.logger.warn({ event: 'provider-event-refused', provider, why: verified.why }, 'a provider event was refused: its signature did not verify, or it was stale or replayed');
    return { status: 401, body: { error: verified.why } };
  }
  let linked: boolean[];
  try {
    linked = verified.events.length > 0 ? await b.link(verified.events) : [];
  } catch (err) {
    // A worker did not answer: its trace may hold the message. The provider sends the request again.
    guard.undo();
    b.logger.warn({ event: 'provider-events-deferred', provider, err: (err as Error).message }, 'provider events could not be linked now; the provider will send them again');
    return { status: 503, body: { error: 'try again later' } };
  }
  b.count(provider, 'ignored', verified.ignored);
  const matched = linked.filter(Boolean).length;
  const unmatched = verified.events.length - matched;
  b.count(provider, 'matched', matched);
  b.count(provider, 'unmatched', unmatched);
  if (unmatched > 0) b.logger.info({ event: 'provider-events-unmatched', provider, unmatched }, 'provider events for messages this relay has no record of (older than the trace, or not sent by it): counted, not linked');
  return { status: matched === 0 && verified.events.length > 0 ? noneMatched : 200, body: { matched, unmatched, ignored: verified.ignored } };
}

/** Each event linked to its message in this process's trace, if it has it: whether it was. */
async function linkEvents(b: ProviderEventsBackend, events: readonly ProviderEvent[]): Promise<boolean[]> {
  const linked: boolean[] = [];
  for (const event of events) {
    const message = messageOf(b, event);
    if (message) await take1(b, event, message);
    linked.push(message !== undefined);
  }
  return linked;
}

/** The message an event is about (its signed queue id, or its Message-ID, in the trace), with that recipient among its own. */
function messageOf(b: ProviderEventsBackend, event: ProviderEvent): TracedMessage | undefined {
  const query = event.queueId ? { queueId: event.queueId } : event.messageId ? { messageId: event.messageId } : undefined;
  if (!query || !b.find) return undefined;
  return b.find(query).find((m) => hadRecipient(m, event.recipient));
}

/** Only a recipient the message had: a report cannot name anyone else. */
const hadRecipient = (m: TracedMessage, recipient: string) => m.events.some((e) => e.recipient.toLowerCase() === recipient);

/**
 * A report that came back by mail (inbound/bounce-listener.ts) for the message its return path names:
 * each recipient that message had is linked as a provider's event is; the rest is counted. How many were linked.
 */
export async function takeBounceReport(b: EventLinker, queueId: string, reported: readonly ReportedRecipient[]): Promise<number> {
  const linked = await b.linkBounce(queueId, reported);
  b.count('bounce-mail', 'matched', linked);
  b.count('bounce-mail', 'unmatched', reported.length - linked);
  return linked;
}

/** A report's recipients linked to the message `queueId`, if this process's trace has it: how many. */
async function linkBounceReport(b: ProviderEventsBackend, queueId: string, reported: readonly ReportedRecipient[]): Promise<number> {
  const message = b.find?.({ queueId })[0];
  let linked = 0;
  for (const r of reported) {
    if (!message || !hadRecipient(message, r.recipient)) continue;
    await take1(b, { provider: 'bounce-mail', type: r.type, recipient: r.recipient, reason: r.reason, at: Date.now() }, message);
    linked++;
  }
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
