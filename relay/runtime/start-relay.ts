// Assembles a running relay from a config snapshot, each part after what it needs: the spool and its
// volume, the outcome channel and its subscribers, what relays share, reporting, the upstream pools, the
// scheduler (it reads the spool before any listener opens: what was accepted before a crash goes out
// first), the listeners, the ops listener, the config watchers. Each goes on the lifecycle list that a
// reload and a stop walk. The path of one message, file by file:
//
//   inbound/server.ts        a client's session: who may send, address syntax, limits
//   tenancy/resolve.ts       at MAIL FROM: the tenant's record (config files, else the platform's API)
//   routing/decide.ts        the whole decision: tenant, route and fallback, mode, rewrites, DKIM, reason
//   inbound/intake.ts        at DATA: staged, checked, header block split off, then prepared by
//   message/transform.ts       rewrites, Received, DKIM over the final bytes (the body untouched)
//   inbound/accept.ts        queue mode: committed to the spool (queue/spool.ts) before the 250
//   queue/scheduler.ts         when: due times, a line per upstream, limits (limits/) hold mail until it fits
//   queue/attempt.ts           what: one attempt, per-recipient outcomes, retry, expiry, DSN
//   routing/route.ts           each attempt's route, from the snapshot in force then
//   inbound/passthrough.ts   pass-through mode: forwarded while the client waits
//   delivery/deliver.ts      the upstream: pooled SMTP (delivery/smtp.ts) or a maildir
//
// Each outcome on the way goes to observe/outcomes.ts once; logs, metrics and reporting subscribe.
import { clientCertificateExpiries } from '../../config/certificate-names.js';
import type { Config, SmtpUpstream } from '../../config/types.js';
import { UpstreamCapabilities } from '../delivery/capabilities.js';
import { AccessTokens } from '../delivery/oauth2/tokens.js';
import { UpstreamPools } from '../delivery/pools.js';
import { DiskSpace } from '../disk-space.js';
import { certificateFilesOf, readCertificate, watchCertificate } from '../inbound/certificates.js';
import { createInboundServer, type InboundServer } from '../inbound/server.js';
import { Staging } from '../inbound/staging.js';
import type { Logger } from '../log.js';
import { checkDkimSigner } from '../message/dkim.js';
import { writeLogLines } from '../observe/log-lines.js';
import { countOutcomes } from '../observe/outcome-metrics.js';
import { OUTCOME_BATCH_MS, Outcomes } from '../observe/outcomes.js';
import { type SendTestRecord, SendTests } from '../observe/send-tests.js';
import { type Readiness, startOpsServer } from '../ops/http.js';
import { RelayMetrics } from '../ops/metrics.js';
import { liveQueueView } from '../queue/queue-view.js';
import { QueueRequests } from '../queue/requests.js';
import { Scheduler } from '../queue/scheduler.js';
import { Spool, type SpoolIo } from '../queue/spool.js';
import { Reporter } from '../reporting/reporter.js';
import { checkSpoolRoot, listenFailed, spoolFailed } from '../startup-error.js';
import { PlatformTenants } from '../tenancy/platform-tenants.js';
import { watchSecretFiles } from './secret-files.js';
import { Drain, type DrainStatus, waitForSessions } from './drain.js';
import { Lifecycle } from './lifecycle.js';
import { localBackend } from './local-backend.js';
import { opsRoutes } from './ops-routes.js';
import { readinessOf } from './readiness.js';
import { reloadFrom, restartNeeded, watchFile, watchTenantFiles } from './reload.js';
import { type RelayRole, settingsOf } from './role.js';
import { sharedState } from './shared-state.js';
import { type EventLinker, localLinker } from './provider-event-routes.js';
import { listenForBounces } from './bounce-listening.js';
import { suppressionFileOf } from '../suppression/open.js';

export interface RelayOptions {
  readonly logger: Logger;
  /** The file the config came from: reload() re-reads it, and with watchConfig so does a change to it. */
  readonly configFile?: string;
  readonly watchConfig?: boolean;
  /** Run the delivery scheduler on timers (default). Tests of the queue drive it by hand. */
  readonly schedulerTimers?: boolean;
  /** Replaces the spool's fsync and rename: how tests make the disk fail. */
  readonly spoolIo?: SpoolIo;
  /** The relay, one of several workers, or a deliverer of a left spool (default: the relay). */
  readonly role?: RelayRole;
  /** How late outcomes are told to their subscribers (default OUTCOME_BATCH_MS): tests make it long. */
  readonly outcomeBatchMs?: number;
}

export interface RunningRelay {
  /** Where each listener is bound (the real port when the config asked for port 0). */
  readonly addresses: readonly { readonly host: string; readonly port: number }[];
  /** The ops (metrics, health) listener's port, if enabled. */
  readonly opsPort: number | undefined;
  /** The bounce domain's listener's port, with `bounces` (a relay of one process; with workers the primary listens). */
  readonly bouncePort: number | undefined;
  /** The snapshot new transactions use. */
  config(): Config;
  readonly spool: Spool;
  readonly scheduler: Scheduler;
  readonly metrics: RelayMetrics;
  /** Told to their subscribers in batches: `outcomes.flush()` tells what waits (observe/outcomes.ts). */
  readonly outcomes: Outcomes;
  /** Re-reads the config file; an invalid file leaves the running snapshot in force. */
  reload(why?: string): ReturnType<typeof reloadFrom>;
  /** Stops taking mail (421 4.3.2) and delivers what is queued now; resolves when the spool is empty or `deadlineMs` has passed. */
  drain(deadlineMs: number): Promise<DrainStatus>;
  /** Takes mail again after a drain (a drain that was not followed by a stop). */
  undrain(): DrainStatus;
  drainStatus(): DrainStatus;
  /** What /readyz says. */
  readiness(): Promise<Readiness>;
  /** What send-test outcome this relay holds for a token. */
  sendTest(token: string): Promise<SendTestRecord | undefined>;
  /** The message trace (absent with trace.enabled: false). */
  readonly trace: Reporter['trace'];
  /** Links provider events and bounce reports to this relay's messages (a worker's, for its primary). */
  readonly events: EventLinker;
  /**
   * Graceful stop: new connections and transactions get 421, sessions in DATA and deliveries in flight
   * get up to `graceMs` to finish, then pools close. What is queued stays queued for the next start.
   */
  close(graceMs?: number): Promise<void>;
}

export async function startRelay(initial: Config, options: RelayOptions): Promise<RunningRelay> {
  // The library seams fit exact versions: a mismatch stops the start with the versions named.
  checkDkimSigner();
  const { logger } = options;
  const role = settingsOf(options.role ?? { kind: 'single' }, initial);
  let current = initial;
  const config = () => current;
  const parts = new Lifecycle();

  checkSpoolRoot(role.spoolPath);
  const inbound: InboundServer[] = [];
  const alone = () => inbound.reduce((n, server) => n + server.sessions, 0) <= 1;
  const spool = parts.add(new Spool(role.spoolPath, { fsync: initial.delivery.spool.fsync, alone, ...(options.spoolIo ? { io: options.spoolIo } : {}) }));
  // The spool's volume, as intake, the trace and the outboxes spend it.
  const disk = parts.add(new DiskSpace(spool.layout.root, () => current.delivery.spool.minFreeBytes));
  const metrics = new RelayMetrics(() => current.ops.tenantLabels);
  // Told in batches; closed after everything that emits, so a stop tells what waits.
  const outcomes = parts.add(new Outcomes(logger, { batchMs: options.outcomeBatchMs ?? OUTCOME_BATCH_MS }));
  writeLogLines(outcomes, logger);
  countOutcomes(outcomes, metrics);
  const sendTests = new SendTests(outcomes);
  // The cache of platform tenants lives across reloads; a change to the source's settings starts a new one.
  const platformFor = (c: Config) => (c.tenantSource ? new PlatformTenants(c.tenantSource, { logger, metrics, config }) : undefined);
  let platformTenants = platformFor(initial);
  const platform = () => platformTenants;
  // Limits, send-test outcomes and tenant invalidations: in Redis with limits.store.redis, else here.
  const shared = parts.add(sharedState(initial, { logger, metrics, config, platform, limitShare: role.limitShare, stateFile: spool.layout.relaysSeenFile, suppressionFile: suppressionFileOf(initial) }));
  sendTests.shared = shared.outcomes;
  // Delivery events and the trace watch the path from the first message on, recovered ones included.
  const reporter = parts.add(new Reporter({ config, outcomes, logger, metrics, disk, eventsDir: (name) => spool.layout.eventsDir(name), traceFile: spool.layout.traceFile }));
  // Access tokens of OAuth2 upstreams, for every pool that needs one. A token endpoint a tenant typed in
  // is held to the host policy of that tenant's upstream, from the snapshot in force when it is asked.
  const tokens = new AccessTokens({ logger, metrics });
  const pools = parts.add(
    new UpstreamPools(initial.hostname, (upstream, renew) =>
      upstream.auth?.kind === 'oauth2'
        ? tokens.get(upstream.auth.grant, { upstream: upstream.name, hostPolicy: upstream.hostPolicy ?? current.upstreamHosts }, renew)
        : Promise.reject(new Error(`upstream ${upstream.name} has no OAuth2 grant`)),
    ),
  );
  const upstreams = { pools, capabilities: new UpstreamCapabilities(initial.hostname) };
  const scheduler = new Scheduler({ spool, requests: new QueueRequests(spool.layout), config, upstreams, limiter: shared.limiter, suppression: shared.suppression, ...(shared.pacing ? { pacingFleet: shared.pacing } : {}), outcomes, logger, platform });
  await scheduler.start({ timers: options.schedulerTimers ?? true }).catch((err: unknown) => {
    throw spoolFailed(err, spool.layout.root);
  });
  // A stop gives the deliveries in flight what is left of its grace period (set by close()): one cut off
  // after the upstream took the message would stay in the spool and go out again at the next start.
  let deliveryGraceMs = 0;
  parts.add({ close: () => scheduler.stop(deliveryGraceMs) });

  const drain = new Drain(scheduler, () => inbound, logger);
  const readiness = readinessOf(() => inbound, spool.layout.temp(`.ready-${process.pid}`), () => drain.draining);
  metrics.watch({
    queueDepth: () => scheduler.size,
    oldestQueuedSeconds: () => {
      const oldest = scheduler.oldestCreatedAt();
      return oldest === undefined ? 0 : (Date.now() - oldest) / 1000;
    },
    pools: () => pools.size,
    ready: async () => ((await readiness()).ready ? 1 : 0),
    spoolFreeBytes: () => spool.freeBytes(),
    spoolMinFreeBytes: () => current.delivery.spool.minFreeBytes,
    webhookBacklogs: () => reporter.backlogs(),
    clientCertificateExpiries: () => clientCertificateExpiries(current),
    ...(initial.limits.redis ? { limitsShared: () => shared.limitsShared() } : {}),
  });

  // What the smarthost provider's webhooks and bounces by mail are linked through (provider-event-routes.ts).
  const trace = reporter.trace;
  const events = localLinker({ config, find: trace && ((query) => trace.find(query, 20)), outcomes, suppression: shared.suppression, metrics, logger });
  const addresses: { host: string; port: number }[] = [];
  let opsPort: number | undefined;
  let bouncePort: number | undefined;
  try {
    const deps = { config, staging: new Staging(spool.layout.tmpDir), spool, scheduler, upstreams, disk, limiter: shared.limiter, suppression: shared.suppression, outcomes, draining: () => drain.draining, logger, platform };
    for (const [i, listener] of (role.listen ? initial.listen : []).entries()) {
      const server = createInboundServer(listener, deps);
      parts.add({ apply: (next) => server.apply(next), close: () => server.close(0) });
      inbound.push(server);
      parts.onClose(watchCertificate(certificateFilesOf(listener), (material) => server.updateCertificate(material), logger));
      addresses.push(
        await server.listen({ reusePort: role.reusePort }).catch((err: unknown) => {
          throw listenFailed(err, `listen[${i}]`, listener.host, listener.port);
        }),
      );
    }
    if (initial.ops.enabled && role.ops) {
      const backend = localBackend({ metrics, outcomes, readiness, sendTests, drain, config, logger, trace: reporter.trace, queue: liveQueueView(spool, scheduler), applyRequests: () => scheduler.applyRequestsNow(), smtpPort: () => addresses[0]?.port, suppression: shared.suppression, providerEvents: events });
      const tlsFiles = initial.ops.tls && { ...initial.ops.tls, name: 'ops' };
      const tls = readCertificate(tlsFiles);
      const ops = await startOpsServer({ host: initial.ops.host, port: initial.ops.port, ...(tls ? { tls: { key: tls.key, cert: tls.cert } } : {}) }, opsRoutes(backend), () => current.ops).catch((err: unknown) => {
        throw listenFailed(err, 'ops.port', initial.ops.host, initial.ops.port);
      });
      parts.add(ops);
      parts.onClose(watchCertificate(tlsFiles, (material) => ops.updateCertificate(material), logger));
      opsPort = ops.port;
    }
    // One relay process (with workers, the primary runs it and asks them: runtime/primary.ts).
    if (initial.bounces && role.listen && role.ops) {
      const bounces = await listenForBounces(initial.bounces.listen, () => current.bounces, events);
      parts.add(bounces);
      bouncePort = bounces.port;
    }
  } catch (err) {
    await parts.close();
    throw err;
  }

  // The snapshot is swapped for new transactions; each part takes what concerns it.
  parts.add({
    apply: (next) => {
      if (JSON.stringify(next.tenantSource) !== JSON.stringify(current.tenantSource)) platformTenants = platformFor(next);
      current = next;
    },
    close: () => {},
  });
  parts.add({ apply: (next) => pools.retain(smtpUpstreams(next)), close: () => {} });
  parts.add({ apply: (next) => reporter.configure(next), close: () => {} });
  const reload = (why = 'reload requested') => {
    if (!options.configFile) return { ok: false as const, errors: ['the relay was not started from a file'] };
    const result = reloadFrom(
      options.configFile,
      (next) => {
        parts.apply(next);
        return restartNeeded(initial, next);
      },
      logger,
      why,
    );
    metrics.reloads.inc({ result: result.ok ? 'success' : 'failure' });
    return result;
  };
  // A rotated secret file or renewed client certificate is in use without a reload by hand (secret-files.ts).
  if (options.configFile) parts.add(watchSecretFiles(initial, (file) => reload(`secret file changed: ${file}`)));
  if (options.configFile && options.watchConfig) {
    const file = options.configFile;
    parts.onClose(watchFile(file, () => reload('file changed')));
    // Tenant files are watched as the snapshot that started listed them; a change to that list needs SIGHUP.
    for (const entry of initial.tenantFiles) parts.onClose(watchTenantFiles(entry, () => reload(`tenant files changed (${entry})`)));
  }

  logger.info({ event: role.startEvent, addresses, ops: opsPort ?? null, ...(bouncePort !== undefined ? { bounces: bouncePort } : {}), config: initial.source, tenants: initial.tenants.length });
  return {
    addresses,
    opsPort,
    bouncePort,
    config,
    spool,
    scheduler,
    metrics,
    outcomes,
    reload,
    drain: (ms) => drain.start(ms),
    undrain: () => drain.undrain(),
    drainStatus: () => drain.status(),
    sendTest: (token) => sendTests.get(token),
    readiness,
    trace: reporter.trace,
    events,
    async close(graceMs = current.ops.shutdownGraceMs) {
      const deadline = Date.now() + graceMs;
      drain.close();
      await waitForSessions(inbound, graceMs);
      // Scaling in: what is queued goes out now, for up to ops.drainSeconds, rather than wait on this disk.
      if (current.ops.drainMs > 0 && scheduler.size > 0) await drain.start(current.ops.drainMs);
      deliveryGraceMs = Math.max(0, deadline - Date.now());
      await parts.close();
    },
  };
}

function smtpUpstreams(config: Config): SmtpUpstream[] {
  return [config.smarthost, ...config.tenants.map((t) => t.upstream)].filter((u): u is SmtpUpstream => u?.kind === 'smtp');
}
