// Wires the stages together and holds one config snapshot at a time (reload swaps it for new
// transactions). The path of one message, file by file:
//
//   inbound/server.ts        a client's session: who may send, address syntax, limits
//   tenancy/resolve.ts       at MAIL FROM: the tenant's record (config files, else the platform's API)
//   routing/decide.ts        the whole decision: tenant, route and fallback, mode, rewrites, DKIM, reason
//   inbound/intake.ts        at DATA: staged, checked, header block split off, then prepared by
//   message/transform.ts       rewrites, Received, DKIM over the final bytes (the body untouched)
//   inbound/accept.ts        queue mode: committed to the spool (queue/spool.ts) before the 250
//   queue/scheduler.ts         when: due times, a line per upstream, rate smoothing
//   queue/attempt.ts           what: one attempt, per-recipient outcomes, retry, expiry, DSN
//   routing/route.ts           each attempt's route, from the snapshot in force then
//   inbound/passthrough.ts   pass-through mode: forwarded while the client waits
//   delivery/deliver.ts      the upstream: pooled SMTP (delivery/smtp.ts) or a maildir
//
// Beside the path: events.ts (what became of each message, for observers), ops/ (logs, metrics, health,
// reload), config/ (the snapshot). Arrows point down this list; nothing in delivery/ imports a stage.
import fs from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { Config, SmtpUpstream } from '../config/types.js';
import { UpstreamCapabilities } from './delivery/capabilities.js';
import { checkNodemailerSeams } from './delivery/nodemailer-seams.js';
import { AccessTokens } from './delivery/oauth2/tokens.js';
import { UpstreamPools } from './delivery/pools.js';
import { preflightEndpoint } from './delivery/preflight.js';
import { MessageEvents } from './events.js';
import { certificateFilesOf, readCertificate, watchCertificate } from './inbound/certificates.js';
import { createInboundServer, type InboundServer } from './inbound/server.js';
import { checkSmtpServerSeams } from './inbound/smtp-server-seams.js';
import { Staging } from './inbound/staging.js';
import type { Limiter } from './limits/limiter.js';
import { MemoryLimiter } from './limits/memory.js';
import { RedisLimiter } from './limits/redis.js';
import { checkDkimSigner } from './message/dkim.js';
import { type DrainStatus, type OpsBackend, opsRoutes, renderedOnce } from './runtime/ops-routes.js';
import { checkSpoolRoot, listenFailed, spoolFailed } from './startup-error.js';
import { type OpsServer, type Readiness, startOpsServer } from './ops/http.js';
import type { Logger } from './ops/log.js';
import { RelayMetrics } from './ops/metrics.js';
import { reloadFrom, watchFile, watchTenantFiles } from './ops/reload.js';
import { type SendTestRecord, type SharedOutcomes, SendTests } from './ops/send-tests.js';
import { QueueRequests } from './queue/requests.js';
import { Scheduler } from './queue/scheduler.js';
import { Spool, type SpoolIo } from './queue/spool.js';
import { PRIVATE_FILE } from './private-files.js';
import { DiskSpace } from './disk-space.js';
import { connectRedis } from './redis.js';
import { InvalidationWindow } from './tenancy/invalidations.js';
import { ThrottledLog } from './ops/throttled-log.js';
import { sign, verify } from './signed.js';
import { Reporter } from './reporting/reporter.js';
import { PlatformTenants } from './tenancy/platform-tenants.js';

export type { DrainStatus } from './runtime/ops-routes.js';

export interface RelayOptions {
  readonly logger: Logger;
  /** The file the config came from: reload() re-reads it, and with watchConfig so does a change to it. */
  readonly configFile?: string;
  readonly watchConfig?: boolean;
  /** Run the delivery scheduler on timers (default). Tests of the queue drive it by hand. */
  readonly schedulerTimers?: boolean;
  /** Replaces the spool's fsync and rename: how tests make the disk fail. */
  readonly spoolIo?: SpoolIo;
  /** This process's spool, when it is one of several workers (default: delivery.spool.path). */
  readonly spoolPath?: string;
  /** false: no SMTP listeners (a worker that only delivers what an earlier worker left). */
  readonly listen?: boolean;
  /** Without a shared store: this process's part of every limit (1 / workers). Default 1. */
  readonly limitShare?: number;
  /** Each worker binds the SMTP ports itself (SO_REUSEPORT): see relay/workers/primary.ts. */
  readonly reusePort?: boolean;
  /** false: no ops listener (a worker: the primary answers for all). */
  readonly ops?: boolean;
  /** The name of the start line in the log ("listening", or a worker's). */
  readonly startEvent?: string;
}

export interface RunningRelay {
  /** Where each listener is bound (the real port when the config asked for port 0). */
  readonly addresses: readonly { readonly host: string; readonly port: number }[];
  /** The ops (metrics, health) listener's port, if enabled. */
  readonly opsPort: number | undefined;
  /** The snapshot new transactions use. */
  config(): Config;
  readonly spool: Spool;
  readonly scheduler: Scheduler;
  readonly metrics: RelayMetrics;
  readonly events: MessageEvents;
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
  /**
   * Graceful stop: new connections and transactions get 421, sessions in DATA and deliveries in flight
   * get up to `graceMs` to finish, then pools close. What is queued stays queued for the next start.
   */
  close(graceMs?: number): Promise<void>;
}

export async function startRelay(initial: Config, options: RelayOptions): Promise<RunningRelay> {
  // The library seams fit exact versions: a mismatch stops the start with the versions named.
  checkSmtpServerSeams();
  checkNodemailerSeams();
  checkDkimSigner();
  const { logger } = options;
  let current = initial;
  let draining = false;
  /** Stopping for good: an undrain cannot take mail again. */
  let closing = false;
  const config = () => current;
  checkSpoolRoot(options.spoolPath ?? initial.delivery.spool.path);
  const spool = new Spool(options.spoolPath ?? initial.delivery.spool.path, { fsync: initial.delivery.spool.fsync, ...(options.spoolIo ? { io: options.spoolIo } : {}) });
  const events = new MessageEvents(logger);
  // The spool's volume, as intake, the trace and the outboxes spend it.
  const disk = new DiskSpace(spool.layout.root, () => current.delivery.spool.minFreeBytes);
  const sendTests = new SendTests(events);
  // The metrics read the scheduler, the pools and readiness, made below: the gauges look them up late.
  const late: { scheduler?: Scheduler; pools?: UpstreamPools; readiness?: () => Promise<Readiness>; reporter?: Reporter; shared?: SharedState } = {};
  const metrics = new RelayMetrics({
    queueDepth: () => late.scheduler?.size ?? 0,
    oldestQueuedSeconds: () => {
      const oldest = late.scheduler?.oldestCreatedAt();
      return oldest === undefined ? 0 : (Date.now() - oldest) / 1000;
    },
    pools: () => late.pools?.size ?? 0,
    ready: async () => ((await late.readiness?.())?.ready ? 1 : 0),
    spoolFreeBytes: () => spool.freeBytes(),
    spoolMinFreeBytes: () => current.delivery.spool.minFreeBytes,
    webhookBacklogs: () => late.reporter?.backlogs() ?? [],
    ...(initial.limits.redis ? { limitsShared: () => late.shared?.limitsShared() } : {}),
    tenantLabels: () => current.ops.tenantLabels,
  });
  // What several relays share, in Redis when limits.store.redis says so: limits, send-test outcomes, and
  // tenant invalidations; else this process's memory.
  const shared = sharedState(initial, { logger, metrics, config, platform: () => platformTenants, limitShare: options.limitShare ?? 1, stateFile: spool.layout.relaysSeenFile });
  late.shared = shared;
  const limiter = shared.limiter;
  sendTests.shared = shared.outcomes;
  // Delivery events and the trace watch the path from the first message on, recovered ones included.
  const reporter = new Reporter({ config, events, logger, metrics, disk, eventsDir: (name) => spool.layout.eventsDir(name), traceFile: spool.layout.traceFile });
  late.reporter = reporter;
  // Access tokens of OAuth2 upstreams, for every pool that needs one. A token endpoint a tenant typed in
  // is held to the host policy of that tenant's upstream, from the snapshot in force when it is asked.
  const tokens = new AccessTokens({ logger, metrics });
  const pools = new UpstreamPools(initial.hostname, (upstream, renew) =>
    upstream.auth?.kind === 'oauth2'
      ? tokens.get(upstream.auth.grant, { upstream: upstream.name, hostPolicy: upstream.hostPolicy ?? current.upstreamHosts }, renew)
      : Promise.reject(new Error(`upstream ${upstream.name} has no OAuth2 grant`)),
  );
  late.pools = pools;
  const edge = { pools, capabilities: new UpstreamCapabilities(initial.hostname) };
  // The cache of platform tenants lives across reloads; a change to the source's settings starts a new one.
  const platformFor = (c: Config) => (c.tenantSource ? new PlatformTenants(c.tenantSource, { logger, metrics, config }) : undefined);
  let platformTenants = platformFor(initial);
  const platform = () => platformTenants;
  const requests = new QueueRequests(spool.layout);
  const scheduler = new Scheduler({ spool, requests, config, edge, limiter, metrics, events, logger, platform });
  late.scheduler = scheduler;
  // The spool is read before the listeners open: what was accepted before a crash goes out first.
  await scheduler.start({ timers: options.schedulerTimers ?? true }).catch((err: unknown) => {
    throw spoolFailed(err, spool.layout.root);
  });
  const staging = new Staging(spool.layout.tmpDir);
  const deps = { config, staging, spool, scheduler, edge, disk, limiter, metrics, events, draining: () => draining, logger, platform };

  const inbound: InboundServer[] = [];
  const addresses: { host: string; port: number }[] = [];
  const stops: (() => void)[] = [];
  let ops: OpsServer | undefined;
  const stopAll = async (graceMs: number) => {
    for (const stop of stops) stop();
    await Promise.all(inbound.map((s) => s.close(graceMs)));
    await scheduler.stop(graceMs);
    await reporter.close();
    await ops?.close();
    pools.close();
    shared.close();
    disk.close();
    await spool.close();
  };
  const drainStatus = (): DrainStatus => ({ draining, queued: scheduler.size, inFlight: scheduler.inFlight });
  let drained: Promise<DrainStatus> | undefined;
  const drain = (deadlineMs: number): Promise<DrainStatus> => {
    draining = true;
    for (const s of inbound) s.closeIdle();
    drained ??= (async () => {
      logger.info({ event: 'draining', queued: scheduler.size }, 'refusing new mail (421 4.3.2) and delivering what is queued');
      const deadline = performance.now() + deadlineMs;
      let hurried = -Infinity;
      while (draining && scheduler.size > 0 && performance.now() < deadline) {
        // The last chance to deliver: what waits for a retry goes now, and again every 30 s.
        if (performance.now() - hurried >= 30_000) {
          scheduler.hurry();
          hurried = performance.now();
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      const status = drainStatus();
      // What is left, and why: held by a limit (and which), or waiting for a retry.
      const held = scheduler.holds.reasons();
      if (draining) logger.info({ event: 'drained', queued: status.queued, ...(Object.keys(held).length ? { held } : {}) }, status.queued === 0 ? 'the spool is empty' : 'mail is left in the spool');
      drained = undefined;
      return status;
    })();
    return drained;
  };
  const undrain = (): DrainStatus => {
    if (draining && !closing) {
      draining = false;
      logger.info({ event: 'undrained', queued: scheduler.size }, 'taking mail again');
    }
    return drainStatus();
  };
  try {
    for (const [i, listener] of (options.listen === false ? [] : initial.listen).entries()) {
      const server = createInboundServer(listener, deps);
      inbound.push(server);
      stops.push(watchCertificate(certificateFilesOf(listener), (material) => server.updateCertificate(material), logger));
      addresses.push(
        await server.listen({ reusePort: options.reusePort ?? false }).catch((err: unknown) => {
          throw listenFailed(err, `listen[${i}]`, listener.host, listener.port);
        }),
      );
    }
    const spoolWritable = cachedFor(2000, () => probeWritable(spool.layout.temp(`.ready-${process.pid}`)));
    // No file paths: /readyz is open to whoever reaches the listener.
    late.readiness = async () => {
      const checks = { config: 'loaded', listening: inbound.every((s) => s.listening), spoolWritable: await spoolWritable(), draining };
      return { ready: checks.listening && checks.spoolWritable && !draining, checks };
    };
    const trace = reporter.trace;
    if (initial.ops.enabled && options.ops !== false) {
      const backend: OpsBackend = {
        metrics: renderedOnce(async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() })),
        readiness: () => late.readiness?.() ?? Promise.resolve({ ready: false, checks: {} }),
        sendTest: (token) => sendTests.get(token),
        // Candidate upstreams are typed by tenant admins: checked under the tenant-entered host policy.
        preflight: (body) => preflightEndpoint({ method: 'POST', body }, current, logger),
        drain: async (ms) => {
          void drain(ms);
          return drainStatus();
        },
        undrain: async () => undrain(),
        drainStatus: async () => drainStatus(),
        trace: trace && ((query, limit, tenant) => trace.find(query, limit, tenant)),
      };
      const tlsFiles = initial.ops.tls && { ...initial.ops.tls, name: 'ops' };
      const tls = readCertificate(tlsFiles);
      ops = await startOpsServer({ host: initial.ops.host, port: initial.ops.port, ...(tls ? { tls: { key: tls.key, cert: tls.cert } } : {}) }, opsRoutes(backend), () => current.ops).catch((err: unknown) => {
        throw listenFailed(err, 'ops.port', initial.ops.host, initial.ops.port);
      });
      const opsServer = ops;
      stops.push(watchCertificate(tlsFiles, (material) => opsServer.updateCertificate(material), logger));
    }
  } catch (err) {
    await stopAll(0);
    throw err;
  }

  /** Swaps the snapshot; returns the settings that only a restart can change. */
  const apply = (next: Config): string[] => {
    const restartNeeded = [
      JSON.stringify(next.listen) !== JSON.stringify(initial.listen) && 'listen',
      next.delivery.spool.path !== initial.delivery.spool.path && 'delivery.spool.path',
      JSON.stringify(next.ops) !== JSON.stringify(initial.ops) && 'ops',
      next.hostname !== initial.hostname && 'hostname',
      JSON.stringify(next.limits) !== JSON.stringify(initial.limits) && 'limits',
      next.workers !== initial.workers && 'workers',
    ].filter((s): s is string => typeof s === 'string');
    if (JSON.stringify(next.tenantSource) !== JSON.stringify(current.tenantSource)) platformTenants = platformFor(next);
    current = next;
    for (const server of inbound) server.apply(next);
    pools.retain(smtpUpstreams(next));
    reporter.configure(next);
    return restartNeeded;
  };
  const reload = (why = 'reload requested') => {
    if (!options.configFile) return { ok: false as const, errors: ['the relay was not started from a file'] };
    const result = reloadFrom(options.configFile, apply, logger, why);
    metrics.reloads.inc({ result: result.ok ? 'success' : 'failure' });
    return result;
  };
  if (options.configFile && options.watchConfig) {
    const file = options.configFile;
    stops.push(watchFile(file, () => reload('file changed')));
    // Tenant files are watched as the snapshot that started listed them; a change to that list needs SIGHUP.
    for (const entry of initial.tenantFiles) stops.push(watchTenantFiles(entry, () => reload(`tenant files changed (${entry})`)));
  }

  logger.info({ event: options.startEvent ?? 'listening', addresses, ops: ops?.port ?? null, config: initial.source, tenants: initial.tenants.length });
  return {
    addresses,
    opsPort: ops?.port,
    config,
    spool,
    scheduler,
    metrics,
    events,
    reload,
    drain,
    undrain,
    drainStatus,
    sendTest: (token) => sendTests.get(token),
    readiness: () => late.readiness?.() ?? Promise.resolve({ ready: false, checks: {} }),
    trace: reporter.trace,
    async close(graceMs = current.ops.shutdownGraceMs) {
      closing = true;
      draining = true;
      await waitForSessions(inbound, graceMs);
      // Scaling in: what is queued goes out now, for up to ops.drainSeconds, rather than wait on this disk.
      if (current.ops.drainMs > 0 && scheduler.size > 0) await drain(current.ops.drainMs);
      await stopAll(0);
    },
  };
}

interface SharedState {
  readonly limiter: Limiter;
  readonly outcomes?: SharedOutcomes;
  limitsShared(): number | undefined;
  close(): void;
}

/**
 * Limits, send-test outcomes and tenant invalidations: through Redis when limits.store.redis is set (one
 * connection, and one more to listen on the invalidation channel), else in this process.
 */
function sharedState(config: Config, deps: { logger: Logger; metrics: RelayMetrics; config: () => Config; platform: () => PlatformTenants | undefined; limitShare: number; stateFile: string }): SharedState {
  const settings = config.limits.redis;
  if (!settings) {
    if (deps.limitShare < 1) deps.logger.info({ event: 'limits-per-worker', share: deps.limitShare }, 'no limits.store: each worker counts its share of every limit in its own memory');
    return { limiter: new MemoryLimiter(deps.limitShare), limitsShared: () => undefined, close: () => {} };
  }
  const { logger } = deps;
  const { signingKey } = settings;
  const redis = connectRedis(settings, logger, 'limits');
  const limiter = new RedisLimiter(redis, settings.keyPrefix, { logger, metrics: deps.metrics, settings: () => deps.config().limits, signingKey, stateFile: deps.stateFile });
  const warnings = new ThrottledLog(logger);
  // Read back only when signed by a relay: anyone else who can write to Redis cannot forge an outcome.
  const outcomes: SharedOutcomes = {
    put: (token, record) => void redis.set(`${settings.keyPrefix}send-test:${token}`, sign(signingKey, `send-test:${token}`, JSON.stringify(record)), 'PX', 3_600_000).catch(() => undefined),
    get: async (token) => {
      const text = await redis.get(`${settings.keyPrefix}send-test:${token}`);
      if (!text) return undefined;
      const value = verify(signingKey, `send-test:${token}`, text);
      if (value === undefined) warnings.warn({ event: 'send-test-outcome-unsigned', token }, 'a send-test outcome in Redis is not signed with limits.store.redis.signingKey: ignored');
      return value === undefined ? undefined : (JSON.parse(value) as SendTestRecord);
    },
  };
  const channel = config.tenantSource?.invalidationChannel;
  const subscriber = channel ? connectRedis(settings, logger, 'subscriber') : undefined;
  if (subscriber && channel) {
    subscriber.subscribe(channel).catch((err: Error) => logger.warn({ event: 'invalidation-subscribe-failed', channel, err: err.message }));
    const invalidations = new InvalidationWindow((ids) => deps.platform()?.invalidate(ids) ?? 0, logger);
    subscriber.on('message', (_channel: string, message: string) => invalidations.take(message));
  }
  return {
    limiter,
    outcomes,
    limitsShared: () => (limiter.shared ? 1 : 0),
    close: () => {
      limiter.close();
      redis.disconnect();
      subscriber?.disconnect();
    },
  };
}

function smtpUpstreams(config: Config): SmtpUpstream[] {
  return [config.smarthost, ...config.tenants.map((t) => t.upstream)].filter((u): u is SmtpUpstream => u?.kind === 'smtp');
}

/** Waits (up to `graceMs`) until no session is left: while draining, each ends after its current message. */
async function waitForSessions(inbound: readonly InboundServer[], graceMs: number): Promise<void> {
  const deadline = performance.now() + graceMs;
  while (inbound.some((s) => s.sessions > 0) && performance.now() < deadline) {
    // Again each round: a session whose DATA just ended is idle now.
    for (const s of inbound) s.closeIdle();
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function probeWritable(probe: string): Promise<boolean> {
  try {
    await fs.writeFile(probe, 'ok', { mode: PRIVATE_FILE });
    await fs.rm(probe);
    return true;
  } catch {
    return false;
  }
}

/** Remembers an async answer for `ms`, so a per-command check costs a syscall at most once in that time. */
function cachedFor(ms: number, compute: () => Promise<boolean>): () => Promise<boolean> {
  let at = -Infinity;
  let value = Promise.resolve(true);
  return () => {
    if (performance.now() - at >= ms) {
      at = performance.now();
      value = compute().catch(() => false);
    }
    return value;
  };
}
