// Reporting, beside the mail path: turns what the path emits (a message accepted, an attempt ended) into
// delivery events, writes them to each webhook's outbox (the platform's, and a tenant's own for its
// messages) and to the trace. The path never waits for it; what it writes before the client hears 250 is
// a synchronous append. Webhooks come and go with the config snapshot.
import type { Config, WebhookSettings } from '../../config/types.js';
import type { Outcomes } from '../observe/outcomes.js';
import type { Logger } from '../log.js';
import type { RelayMetrics } from '../ops/metrics.js';
import { acceptedEvents, attemptEvents, type DeliveryEvent, handledEvents, heldEvents, reportedEvents } from './delivery-events.js';
import type { DiskSpace } from '../disk-space.js';
import { ThrottledLog } from '../ops/throttled-log.js';
import { Outbox } from './outbox.js';
import { TraceStore } from './trace-store.js';
import { WebhookSender } from './webhook.js';

export interface ReporterDeps {
  readonly config: () => Config;
  readonly outcomes: Outcomes;
  readonly logger: Logger;
  readonly metrics: RelayMetrics;
  /** The outbox folder of a webhook, by name; and the trace store's file. */
  readonly eventsDir: (webhook: string) => string;
  readonly traceFile: string;
  /** Under the spool volume's floor the trace and the outboxes write nothing (mail keeps the room). */
  readonly disk?: DiskSpace;
  readonly now?: () => number;
}

interface Webhook {
  readonly outbox: Outbox;
  readonly sender: WebhookSender;
  /** Which events it receives: every tenant's (the platform's), or one tenant's. */
  readonly tenant?: string;
}

export class Reporter {
  readonly trace: TraceStore | undefined;
  readonly #deps: ReporterDeps;
  readonly #webhooks = new Map<string, Webhook>();
  readonly #warnings: ThrottledLog;

  constructor(deps: ReporterDeps) {
    this.#deps = deps;
    const { trace } = deps.config();
    this.trace = trace.enabled
      ? new TraceStore(deps.traceFile, { retentionMs: trace.retentionMs, maxBytes: trace.maxBytes, ...(deps.now ? { now: deps.now } : {}), ...(deps.disk ? { disk: deps.disk } : {}), beforeRead: () => deps.outcomes.flush() })
      : undefined;
    this.#warnings = new ThrottledLog(deps.logger);
    this.configure(deps.config());
    deps.outcomes.on('accepted', (e) => {
      this.trace?.accepted(e.message, e.size, e.envelope.rcptTo, e.decision);
      this.#report(acceptedEvents(e));
    });
    deps.outcomes.on('attempted', (e) => this.#report(attemptEvents(e)));
    // A long hold is told once, and again each hour, not at every look.
    deps.outcomes.on('held', (e) => {
      if (e.news) this.#report(heldEvents(e));
    });
    deps.outcomes.on('handled', (e) => this.#report(handledEvents(e)));
    deps.outcomes.on('reported', (e) => this.#report(reportedEvents(e)));
  }

  /** Starts, keeps or stops webhooks as `config` lists them. A stopped one keeps its outbox on disk. */
  configure(config: Config): void {
    const wanted = new Map<string, { settings: () => WebhookSettings | undefined; tenant?: string }>();
    if (config.webhook) wanted.set('platform', { settings: () => this.#deps.config().webhook });
    for (const t of config.tenants) {
      if (t.webhook) wanted.set(`tenant-${t.id}`, { settings: () => this.#deps.config().directory.byId(t.id)?.webhook, tenant: t.id });
    }
    for (const [name, webhook] of this.#webhooks) {
      if (wanted.has(name)) continue;
      this.#webhooks.delete(name);
      void webhook.sender.stop().then(() => webhook.outbox.close());
      this.#deps.logger.info({ event: 'webhook-removed', webhook: name, backlog: webhook.outbox.backlog }, 'no longer in the config; its unsent events stay on disk');
    }
    for (const [name, want] of wanted) {
      if (this.#webhooks.has(name)) continue;
      const settings = want.settings();
      if (!settings) continue;
      const outbox = new Outbox(this.#deps.eventsDir(name), settings.maxBacklogEvents);
      const sender = new WebhookSender(name, outbox, { logger: this.#deps.logger, metrics: this.#deps.metrics, settings: want.settings });
      this.#webhooks.set(name, { outbox, sender, ...(want.tenant ? { tenant: want.tenant } : {}) });
      sender.start();
      if (outbox.backlog > 0) this.#deps.logger.info({ event: 'webhook-backlog', webhook: name, backlog: outbox.backlog }, 'events left from an earlier run are sent first');
    }
  }

  backlogs(): [string, number][] {
    return [...this.#webhooks].map(([name, w]) => [name, w.outbox.backlog]);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#webhooks.values()].map((w) => w.sender.stop()));
    for (const w of this.#webhooks.values()) w.outbox.close();
    this.#webhooks.clear();
    this.trace?.close();
  }

  #report(events: readonly DeliveryEvent[]): void {
    if (events.length === 0) return;
    this.trace?.events(events);
    if (this.#webhooks.size === 0) return;
    const config = this.#deps.config();
    const texts = events.map((e) => JSON.stringify(e));
    for (const [name, webhook] of this.#webhooks) {
      const types = (webhook.tenant === undefined ? config.webhook : config.directory.byId(webhook.tenant)?.webhook)?.types;
      const wanted = texts.filter((_, i) => {
        const e = events[i] as DeliveryEvent;
        return (webhook.tenant === undefined || e.tenant === webhook.tenant) && (!types || types.includes(e.type));
      });
      if (wanted.length === 0) continue;
      if (this.#deps.disk?.belowFloor) {
        this.#deps.metrics.webhookEventsDropped.inc({ webhook: this.#deps.metrics.webhook(name) }, wanted.length);
        this.#warnings.warn({ event: 'webhook-events-not-written', webhook: name, events: wanted.length }, "the spool's volume is under its floor (delivery.spool.minFreeMegabytes): delivery events are not written until it has room");
        continue;
      }
      this.#deps.disk?.written(wanted.reduce((n, e) => n + e.length + 1, 0));
      const dropped = webhook.outbox.append(wanted);
      if (dropped > 0) {
        this.#deps.metrics.webhookEventsDropped.inc({ webhook: this.#deps.metrics.webhook(name) }, dropped);
        this.#deps.logger.warn({ event: 'webhook-events-dropped', webhook: name, dropped, backlog: webhook.outbox.backlog }, 'the backlog passed maxBacklogEvents: the oldest events were dropped');
      }
      webhook.sender.poke();
    }
  }
}
