// Sends one outbox to its webhook: a batch at a time, oldest first (so a message's events arrive in
// order), each request signed the Standard Webhooks way (https://www.standardwebhooks.com): headers
// webhook-id, webhook-timestamp and webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>",
// keyed with the base64 after whsec_. A batch is forgotten only after a 2xx; anything else is retried
// with backoff (1 s doubling to 5 min), the same batch again. It runs beside the mail path and never
// waits for it, nor makes it wait: a webhook that hangs holds one socket until the deadline.
import { createHmac } from 'node:crypto';
import type { WebhookSettings } from '../../config/types.js';
import { requestHttp } from '../http-client.js';
import type { Logger } from '../log.js';
import type { RelayMetrics } from '../ops/metrics.js';
import type { Batch, Outbox } from './outbox.js';

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 5 * 60_000;
/** A batch the webhook refuses this many times in a row with a 4xx that retrying cannot fix is dead-lettered. */
const MAX_REFUSALS = 5;
const REFUSAL_PAUSE_MS = 500;

/** What became of one request. */
type Posted = { readonly kind: 'ok' } | { readonly kind: 'too-large' } | { readonly kind: 'refused'; readonly reason: string } | { readonly kind: 'failed'; readonly reason: string };

export interface WebhookSenderDeps {
  readonly logger: Logger;
  readonly metrics: RelayMetrics;
  /** The webhook's settings in the snapshot in force (a reload may change its URL or key). */
  readonly settings: () => WebhookSettings | undefined;
}

export class WebhookSender {
  readonly name: string;
  readonly #outbox: Outbox;
  readonly #deps: WebhookSenderDeps;
  #stopped = false;
  #wake: (() => void) | undefined;
  #inFlight: AbortController | undefined;
  #running: Promise<void> | undefined;
  #failingSince: number | undefined;
  #idle = false;

  constructor(name: string, outbox: Outbox, deps: WebhookSenderDeps) {
    this.name = name;
    this.#outbox = outbox;
    this.#deps = deps;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  /** New events were appended: a sender waiting for some goes now (one backing off keeps waiting). */
  poke(): void {
    if (this.#idle) this.#wake?.();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#inFlight?.abort();
    this.#wake?.();
    await this.#running;
  }

  async #loop(): Promise<void> {
    let backoff = 0;
    let emptyReads = 0;
    let refusals = 0;
    let limit = Number.POSITIVE_INFINITY;
    while (!this.#stopped) {
      const settings = this.#deps.settings();
      if (settings) this.#takeReplays();
      const batch = settings ? await this.#outbox.read(Math.min(limit, settings.maxBatchEvents), settings.maxBatchBytes).catch(() => undefined) : undefined;
      if (!settings || !batch) {
        // Appended while the read was finishing, so no poke reached a sleeper: look again, soon.
        if (settings && this.#outbox.backlog > 0 && emptyReads++ < 3) {
          await new Promise((resolve) => setTimeout(resolve, 10));
          continue;
        }
        emptyReads = 0;
        this.#idle = true;
        await this.#sleep(60_000);
        this.#idle = false;
        continue;
      }
      emptyReads = 0;
      if (batch.unreadable > 0) this.#deps.logger.warn({ event: 'webhook-events-unreadable', webhook: this.name, count: batch.unreadable }, 'outbox lines a crash left unreadable were skipped');
      const posted: Posted = batch.events.length === 0 ? { kind: 'ok' } : await this.#post(settings, batch);
      if (this.#stopped) return;
      if (posted.kind === 'ok') {
        this.#outbox.ack(batch);
        this.#deps.metrics.webhookEventsSent.inc({ webhook: this.#deps.metrics.webhook(this.name) }, batch.events.length);
        if (this.#failingSince !== undefined) {
          this.#deps.logger.info({ event: 'webhook-recovered', webhook: this.name, failedForSeconds: Math.round((Date.now() - this.#failingSince) / 1000) });
          this.#failingSince = undefined;
        }
        backoff = 0;
        refusals = 0;
        limit = Math.min(settings.maxBatchEvents, limit * 2);
        continue;
      }
      // 413: the receiver takes smaller requests. Halve the batch at once; a single event too large for
      // it is dead-lettered, so one large event never holds the others back.
      if (posted.kind === 'too-large') {
        if (batch.events.length > 1) {
          limit = Math.max(1, Math.floor(batch.events.length / 2));
          continue;
        }
        this.#deadLetter(batch, 'http-413 for a single event');
        continue;
      }
      this.#deps.metrics.webhookEventsRetried.inc({ webhook: this.#deps.metrics.webhook(this.name) }, batch.events.length);
      if (this.#failingSince === undefined) {
        this.#failingSince = Date.now();
        this.#deps.logger.warn({ event: 'webhook-failing', webhook: this.name, url: redactedUrl(settings.url), reason: posted.reason, backlog: this.#outbox.backlog }, 'the webhook did not take a batch of events; they are kept and retried, mail is not affected');
      }
      // A 4xx a retry cannot fix (a payload it will not take): after a few quick tries, set aside so the
      // rest moves on. (The receiver is up: waiting longer between them would only hold everyone back.)
      if (posted.kind === 'refused') {
        if (++refusals >= MAX_REFUSALS) {
          refusals = 0;
          this.#deadLetter(batch, posted.reason);
        } else await this.#sleep(REFUSAL_PAUSE_MS);
        continue;
      }
      backoff = Math.min(MAX_BACKOFF_MS, backoff === 0 ? MIN_BACKOFF_MS : backoff * 2);
      await this.#sleep(backoff * (0.8 + Math.random() * 0.4));
    }
  }

  #deadLetter(batch: Batch, reason: string): void {
    this.#outbox.deadLetter(batch.events);
    this.#outbox.ack(batch);
    this.#deps.metrics.webhookEventsDeadLettered.inc({ webhook: this.#deps.metrics.webhook(this.name) }, batch.events.length);
    this.#deps.logger.error(
      { event: 'webhook-events-dead-lettered', webhook: this.name, events: batch.events.length, reason, deadLettered: this.#outbox.deadLettered },
      'the webhook refused these events for good: kept in the outbox folder (dead.jsonl), the rest go on; `tenant-relay webhooks replay` sends them again',
    );
  }

  #takeReplays(): void {
    try {
      const replayed = this.#outbox.takeReplays();
      if (replayed > 0) this.#deps.logger.info({ event: 'webhook-events-replayed', webhook: this.name, events: replayed });
    } catch (err) {
      this.#deps.logger.warn({ event: 'webhook-replay-failed', webhook: this.name, err: (err as Error).message });
    }
  }

  /** What the webhook did with a batch: took it (2xx), found it too large (413), refused it (4xx), or failed. */
  async #post(settings: WebhookSettings, batch: Batch): Promise<Posted> {
    const body = `{"events":[${batch.events.join(',')}]}`;
    const id = `msg_${idOf(batch.events[0])}_${idOf(batch.events.at(-1))}`;
    const timestamp = Math.floor(Date.now() / 1000);
    const controller = new AbortController();
    this.#inFlight = controller;
    try {
      const answer = await requestHttp({
        url: new URL(settings.url),
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'tenant-relay',
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signature(settings.secret, id, timestamp, body),
        },
        body,
        ...(settings.ca !== undefined ? { ca: settings.ca } : {}),
        timeoutMs: settings.timeoutMs,
        // The receiver's answer is not read: its status says it all.
        maxBytes: 4096,
        signal: controller.signal,
      });
      if (answer.kind === 'answered') return postedOf(answer.status);
      if (answer.timeout || controller.signal.aborted) return { kind: 'failed', reason: 'timeout' };
      return { kind: 'failed', reason: answer.midAnswer ? 'connection-lost' : `unreachable: ${answer.code ?? 'error'}` };
    } finally {
      this.#inFlight = undefined;
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
    });
  }
}

/** 408 (timeout) and 429 (slow down) are worth retrying; other 4xx say the request itself is not wanted. */
function postedOf(status: number): Posted {
  if (status >= 200 && status < 300) return { kind: 'ok' };
  if (status === 413) return { kind: 'too-large' };
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) return { kind: 'refused', reason: `http-${status}` };
  return { kind: 'failed', reason: `http-${status}` };
}

/** Standard Webhooks' v1 signature: HMAC-SHA256 over "id.timestamp.body", keyed with the secret's bytes. */
export function signature(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

const idOf = (event: string | undefined) => /^\{"id":"([^"]+)"/.exec(event ?? '')?.[1] ?? 'x';

/** A URL for the log: no credentials, no query. */
function redactedUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}
