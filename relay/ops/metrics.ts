// Prometheus metrics, in a registry of the relay's own (not prom-client's global one), so two relays in
// one process (tests) do not share counters.
import client from 'prom-client';
import type { SmtpReply } from '../errors.js';
import type { DeliveryResult } from '../types.js';

/** How often the event-loop lag is sampled (prom-client's default is 10). */
const EVENT_LOOP_SAMPLE_MS = 100;

/** What the gauges read, given once the relay's parts exist (RelayMetrics.watch). */
export interface MetricSources {
  queueDepth(): number;
  /** Age of the oldest queued message, in seconds (0 when empty). */
  oldestQueuedSeconds(): number;
  pools(): number;
  /** 1 when /readyz would say ready (its checks, cached as it caches them), else 0. */
  ready(): Promise<number>;
  /** Free bytes on the spool's file system, and the floor under which MAIL FROM gets 452. */
  spoolFreeBytes(): Promise<number>;
  spoolMinFreeBytes(): number;
  /** Events waiting per webhook. */
  webhookBacklogs?(): Iterable<readonly [string, number]>;
  /** With a shared store only: 1 while limits are counted in it, 0 while counted locally for want of it. */
  limitsShared?(): number | undefined;
  /** When each client certificate the relay may present stops being valid (seconds since the epoch), by its label. */
  clientCertificateExpiries?(): Iterable<readonly [string, number]>;
}

/** How many tenants get label values of their own, and which always do (ops.tenantLabels). */
export type TenantLabelSettings = () => { readonly max: number; readonly always: readonly string[] };

/**
 * Label values for tenants: the first `max` tenants seen since the start keep their own (and those listed
 * in `always`), every later one is counted as "other". A relay of 10,000 tenants must not export a series
 * per tenant per metric: a scrape would be megabytes, and cost the event loop that SMTP runs on.
 */
class TenantLabels {
  readonly #own = new Set<string>();
  constructor(private readonly settings: () => { readonly max: number; readonly always: readonly string[] }) {}

  of(tenant: string | null): string {
    if (tenant === null) return 'none';
    if (this.#own.has(tenant)) return tenant;
    const { max, always } = this.settings();
    if (always.includes(tenant) || this.#own.size < max) {
      this.#own.add(tenant);
      return tenant;
    }
    return 'other';
  }
}

export class RelayMetrics {
  readonly registry = new client.Registry();
  readonly accepted: client.Counter<'tenant' | 'mode'>;
  readonly delivered: client.Counter<'tenant' | 'upstream'>;
  readonly deferred: client.Counter<'tenant' | 'upstream'>;
  readonly bounced: client.Counter<'tenant' | 'upstream'>;
  readonly refused: client.Counter<'reply' | 'code'>;
  readonly upstreamErrors: client.Counter<'upstream' | 'reason'>;
  readonly rateHeld: client.Counter<'tenant'>;
  readonly providerPacing: client.Counter<'upstream' | 'signal'>;
  readonly providerEvents: client.Counter<'provider' | 'result'>;
  readonly tokenRequests: client.Counter<'upstream' | 'provider' | 'result' | 'error'>;
  readonly webhookEventsSent: client.Counter<'webhook'>;
  readonly webhookEventsRetried: client.Counter<'webhook'>;
  readonly webhookEventsDropped: client.Counter<'webhook'>;
  readonly webhookEventsDeadLettered: client.Counter<'webhook'>;
  readonly limitStoreErrors: client.Counter;
  readonly upstreamSeconds: client.Histogram<'via'>;
  readonly reloads: client.Counter<'result'>;
  readonly tenantLookups: client.Counter<'result'>;
  readonly tenantSourceRequests: client.Counter<'result'>;
  readonly tenantSourceSeconds: client.Histogram;

  readonly #labels: TenantLabels;

  constructor(tenantLabels: TenantLabelSettings = () => ({ max: 50, always: [] })) {
    this.#labels = new TenantLabels(tenantLabels);
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) => new client.Counter<L>({ name, help, labelNames, registers });
    this.accepted = counter('tenant_relay_messages_accepted_total', 'Messages accepted from clients (250)', ['tenant', 'mode']);
    this.delivered = counter('tenant_relay_recipients_delivered_total', 'Recipients an upstream accepted', ['tenant', 'upstream']);
    this.deferred = counter('tenant_relay_recipients_deferred_total', 'Recipients that failed temporarily (retried in queue mode)', ['tenant', 'upstream']);
    this.bounced = counter('tenant_relay_recipients_failed_total', 'Recipients that failed permanently', ['tenant', 'upstream']);
    this.refused = counter('tenant_relay_replies_refused_total', 'Commands or messages refused, by reply id (README: What the client hears) and code', ['reply', 'code']);
    this.upstreamErrors = counter(
      'tenant_relay_upstream_errors_total',
      'Recipients an upstream did not take, by the reply id that says why (upstream-auth, upstream-tls, upstream-unreachable, upstream-timeout, upstream-temp-fail, upstream-rejected, ...)',
      ['upstream', 'reason'],
    );
    this.rateHeld = counter('tenant_relay_rate_limit_holds_total', "Queued messages held back because their tenant was over its sending rate (pass-through's refusals are tenant-rate-exceeded replies)", ['tenant']);
    this.providerEvents = counter(
      'tenant_relay_provider_events_total',
      "Events from the smarthost provider's webhooks: matched (to a message this relay sent: a delivery event, and a suppression for a bounce or complaint), unmatched, ignored (kinds the relay does not act on), refused (a bad or missing signature, a stale or replayed request)",
      ['provider', 'result'],
    );
    this.providerPacing = counter(
      'tenant_relay_provider_pacing_total',
      "Cool-downs an upstream mailbox was given because its provider asked to slow down (throttle) or said its quota was used up (quota); its mail waits, held, and comes back to full pace step by step",
      ['upstream', 'signal'],
    );
    this.tokenRequests = counter(
      'tenant_relay_oauth2_token_requests_total',
      "Requests for OAuth2 access tokens, by upstream and provider: issued, refused (with the endpoint's error code) or failed (unreachable, timeout, malformed)",
      ['upstream', 'provider', 'result', 'error'],
    );
    this.webhookEventsSent = counter('tenant_relay_webhook_events_sent_total', 'Delivery events the webhook took (a 2xx), by webhook (platform, tenant-<id>)', ['webhook']);
    this.webhookEventsRetried = counter('tenant_relay_webhook_events_retried_total', 'Delivery events in requests the webhook did not take, kept and sent again', ['webhook']);
    this.webhookEventsDropped = counter('tenant_relay_webhook_events_dropped_total', "Delivery events dropped (single events, oldest first, from the tenants holding the most of the backlog) because the webhook's backlog passed maxBacklogEvents", ['webhook']);
    this.webhookEventsDeadLettered = counter('tenant_relay_webhook_events_dead_lettered_total', 'Delivery events the webhook refused for good (a 4xx five times, or a 413 for one event): kept in dead.jsonl, replayable', ['webhook']);
    this.limitStoreErrors = new client.Counter({ name: 'tenant_relay_limit_store_errors_total', help: 'Calls to the shared limit store (Redis) that failed or passed their deadline; limits were counted locally', registers });
    this.reloads = counter('tenant_relay_config_reloads_total', 'Configuration reloads, by result', ['result']);
    this.tenantLookups = counter(
      'tenant_relay_tenant_lookups_total',
      'Lookups of platform tenants by cache outcome: hit, miss, stale (served while refreshing), joined (a request already in flight), unavailable',
      ['result'],
    );
    this.tenantSourceRequests = counter('tenant_relay_tenant_source_requests_total', 'Requests to the HTTP tenant source: found, not-found, malformed, failed, timeout', ['result']);
    this.tenantSourceSeconds = new client.Histogram({
      name: 'tenant_relay_tenant_source_seconds',
      help: 'Time the HTTP tenant source took to answer one lookup',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    // No tenant or upstream label on a histogram: a dozen series per label value.
    this.upstreamSeconds = new client.Histogram({
      name: 'tenant_relay_upstream_send_seconds',
      help: "Time to hand one message to an upstream: a tenant's own (via=tenant) or the smarthost",
      labelNames: ['via'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    // The event-loop lag histogram samples with a timer: prom-client's 10 ms woke an idle relay 100 times a
    // second, most of its idle CPU, in every worker. A stall longer than the interval always delays a sample
    // by its whole length (the max and p99 the dashboards read); a shorter one only when a sample falls due in it.
    client.collectDefaultMetrics({ register: this.registry, prefix: 'tenant_relay_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /** The gauges, reading the relay's parts at each scrape. */
  watch(sources: MetricSources): void {
    const registers = [this.registry];
    // `aggregator`: how the primary of several workers combines their values into its one /metrics.
    const gauge = (name: string, help: string, read: () => number, aggregator: client.Aggregator = 'sum') =>
      new client.Gauge({
        name,
        help,
        registers,
        aggregator,
        collect() {
          this.set(read());
        },
      });
    gauge('tenant_relay_queue_depth', 'Messages in the queue', () => sources.queueDepth());
    const asyncGauge = (name: string, help: string, read: () => Promise<number>, aggregator: client.Aggregator) =>
      new client.Gauge({
        name,
        help,
        registers,
        aggregator,
        async collect() {
          this.set(await read().catch(() => Number.NaN));
        },
      });
    asyncGauge('tenant_relay_ready', 'Whether the relay is ready (1) or not (0), as /readyz says', () => sources.ready(), 'min');
    asyncGauge('tenant_relay_spool_free_bytes', "Free bytes on the spool's file system", () => sources.spoolFreeBytes(), 'min');
    gauge('tenant_relay_spool_min_free_bytes', 'delivery.spool.minFreeMegabytes, in bytes: under it, MAIL FROM gets 452 4.3.1', () => sources.spoolMinFreeBytes(), 'max');
    gauge('tenant_relay_queue_oldest_seconds', 'Age of the oldest queued message', () => sources.oldestQueuedSeconds(), 'max');
    gauge('tenant_relay_upstream_pools', 'Open upstream connection pools', () => sources.pools());
    // Only on a relay with a store: a series of 0 on one without would say "counting alone" for ever (and
    // prom-client's reset() leaves an unlabelled series at 0), firing TenantRelayLimitsNotShared.
    const limitsShared = sources.limitsShared;
    if (limitsShared) {
      new client.Gauge({
        name: 'tenant_relay_limits_shared',
        help: 'With limits.store.redis: 1 while limits are counted in Redis, 0 while this process counts alone (Redis down or slow)',
        registers,
        aggregator: 'min',
        collect() {
          this.set(limitsShared() ?? 1);
        },
      });
    }
    new client.Gauge({
      name: 'tenant_relay_client_certificate_expiry_timestamp_seconds',
      help: 'When a client certificate the relay presents to upstreams stops being valid, by certificate (its name under clientCertificates, or its file)',
      labelNames: ['certificate'],
      registers,
      aggregator: 'min',
      collect() {
        this.reset();
        for (const [certificate, at] of sources.clientCertificateExpiries?.() ?? []) this.set({ certificate }, at);
      },
    });
    const webhookLabel = (name: string) => this.webhook(name);
    new client.Gauge({
      name: 'tenant_relay_webhook_backlog_events',
      help: 'Delivery events written and not yet taken by the webhook, by webhook',
      labelNames: ['webhook'],
      registers,
      collect() {
        this.reset();
        const byLabel = new Map<string, number>();
        for (const [webhook, n] of sources.webhookBacklogs?.() ?? []) byLabel.set(webhookLabel(webhook), (byLabel.get(webhookLabel(webhook)) ?? 0) + n);
        for (const [webhook, n] of byLabel) this.set({ webhook }, n);
      },
    });
  }

  /** A tenant's label value: its id, or "other" past ops.tenantLabels.max, or "none" for no tenant. */
  tenant(id: string | null): string {
    return this.#labels.of(id);
  }

  /** An upstream's label value: "smarthost", or its tenant's label (tenants' upstreams are named by tenant). */
  upstream(name: string): string {
    return name === 'smarthost' ? name : this.#labels.of(name);
  }

  /** A webhook's label value: "platform", or "tenant-" and its tenant's label. */
  webhook(name: string): string {
    return name.startsWith('tenant-') ? `tenant-${this.#labels.of(name.slice('tenant-'.length))}` : name;
  }

  /** Counts each recipient's outcome of one delivery, and the time it took. */
  recordDelivery(tenant: string | null, result: DeliveryResult, seconds: number): void {
    const upstream = this.upstream(result.upstream);
    const labels = { tenant: this.tenant(tenant), upstream };
    for (const o of result.outcomes) {
      (o.status === 'sent' ? this.delivered : o.status === 'temp' ? this.deferred : this.bounced).inc(labels);
      if (o.status !== 'sent') this.upstreamErrors.inc({ upstream, reason: o.reply.id });
    }
    this.upstreamSeconds.observe({ via: result.upstream === 'smarthost' ? 'smarthost' : 'tenant' }, seconds);
  }

  /** Counts a refusal the SMTP server said, by its reply's id and code. */
  countRefusal(reply: SmtpReply): void {
    this.refused.inc({ reply: reply.id, code: `${reply.code} ${reply.enhanced}` });
  }
}
