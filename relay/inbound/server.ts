// The inbound edge: one SMTP server per listener. Each handler is thin: it checks what the SMTP layer
// owns (who may send, address syntax, limits), asks tenancy and routing for the decision at MAIL FROM,
// and at DATA hands the message to the intake of its mode: accept.ts (queue) or passthrough.ts.
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { isInNetworks, isLoopbackHost } from '../../config/networks.js';
import type { Config, Listener } from '../../config/types.js';
import type { UpstreamAccess } from '../delivery/deliver.js';
import { Replies, type SmtpReply } from '../errors.js';
import type { Logger } from '../log.js';
import { ThrottledLog } from '../ops/throttled-log.js';
import { budgetsFor } from '../limits/budgets.js';
import type { Limiter } from '../limits/limiter.js';
import type { Answered, Outcomes } from '../observe/outcomes.js';
import type { Scheduler } from '../queue/scheduler.js';
import type { Spool } from '../queue/spool.js';
import { decide } from '../routing/decide.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';
import { resolveTenants } from '../tenancy/resolve.js';
import type { AuthIdentity, RouteDecision } from '../types.js';
import type { DiskSpace } from '../disk-space.js';
import { acceptToQueue } from './accept.js';
import { isAcceptableAddress } from './addresses.js';
import { certificateFilesOf, readCertificate } from './certificates.js';
import { SessionGuards } from './guards.js';
import { LookupBudgets } from './lookup-budgets.js';
import { endTransaction, msSince, type OpenTransaction, transactionOf } from './open-transaction.js';
import { suppressionOf, type SuppressionStore, suppressionTenant } from '../suppression/store.js';
import { forwardInSession } from './passthrough.js';
import { verifyPassword } from './passwords.js';
import { reverseLookup } from './reverse-lookup.js';
import { declaredSize, limitsOf, trustedNetworks } from './session-settings.js';
import { SmtpListener } from './smtp/listener.js';
import type { DataAnswer, InboundSession } from './smtp/session-types.js';
import type { Staging } from './staging.js';

export interface InboundDeps {
  /** The snapshot in force now; a transaction keeps the one it started with. */
  readonly config: () => Config;
  readonly staging: Staging;
  readonly spool: Spool;
  readonly scheduler: Scheduler;
  readonly upstreams: UpstreamAccess;
  /** The spool's volume: room for what a transaction may write, above delivery.spool.minFreeMegabytes. */
  readonly disk: DiskSpace;
  readonly limiter: Limiter;
  readonly outcomes: Outcomes;
  /** True once shutdown has begun: new connections and new transactions get 421. */
  readonly draining: () => boolean;
  readonly logger: Logger;
  /** The platform's tenants (the HTTP tenant source), when the config names one. */
  readonly platform: () => PlatformTenants | undefined;
  /** Addresses each tenant's mail does not go to: refused at RCPT where its setting says so. */
  readonly suppression?: SuppressionStore;
}

/** One listener, as the relay drives it. */
export interface InboundServer {
  /**
   * reusePort: a socket of this process's own on the shared port (SO_REUSEPORT), the kernel spreading
   * connections over the workers; else node:cluster's, where the primary accepts and hands each over.
   */
  listen(how?: { readonly reusePort?: boolean }): Promise<{ readonly host: string; readonly port: number }>;
  readonly listening: boolean;
  /** A new snapshot's limits (size, connections, recipients, idle timeout) for new sessions. */
  apply(config: Config): void;
  /** Shutdown: closes every session that is not in the middle of DATA. */
  closeIdle(): void;
  readonly sessions: number;
  /** Stops listening; sessions still open after `graceMs` are cut. */
  close(graceMs: number): Promise<void>;
  /** Serves a renewed certificate to new TLS sessions. */
  updateCertificate(material: { key: Buffer; cert: Buffer }): void;
}

export function createInboundServer(listener: Listener, deps: InboundDeps): InboundServer {
  const pending = new WeakMap<InboundSession, OpenTransaction>();
  // When each session began, and how many of its messages reached a line of their own (queued, message,
  // refused at the dot): those lines name the client, so such a session's `connection` line is debug.
  const sessions = new WeakMap<InboundSession, { readonly at: number; messages: number }>();
  const fail = (reply: SmtpReply) => {
    deps.outcomes.emit('refusal', reply);
    return reply;
  };
  const trusted = trustedNetworks();
  const lookups = new LookupBudgets();
  // A failure that repeats for every message (a full disk) is one line a minute, with a count.
  const warnings = new ThrottledLog(deps.logger);
  const startConfig = deps.config();
  // A password may cross only TLS or loopback: a plain listener on a network address offers no AUTH at
  // all; a STARTTLS one offers it once the session is encrypted (Postfix's smtpd_tls_auth_only: a client
  // that sees no AUTH in cleartext never tries it there), and says 538 to one that tries before.
  const loopback = isLoopbackHost(listener.host);
  const auth = listener.tls === 'starttls' ? 'after-tls' : listener.tls === 'none' && !loopback ? 'never' : 'offered';

  const server: SmtpListener = new SmtpListener(
    {
      name: startConfig.hostname,
      tls: listener.tls,
      certificate: readCertificate(certificateFilesOf(listener)),
      auth,
      limits: limitsOf(startConfig),
      // Trusted clients (apps, sidecars) are greeted at once; others wait for the early-talker check.
      greetingDelayMs: (ip) => (isTrusted(ip) ? 0 : deps.config().inbound.greetingDelayMs),
      // The client's name for the Received header: never asked for a loopback client, bounded by a timeout.
      reverse: (ip, done) => reverseLookup(ip, deps.config().inbound, done),
      // Without this, a failed accept would end the process.
      onError: (err) => deps.logger.debug({ event: 'client-error', err: err.message }),
      fault: (err) => deps.logger.error({ event: 'session-fault', err: err.message, stack: err.stack }, 'a session handler failed; the client was answered 451 or 421'),
    },
    {
      connect(session) {
        if (deps.draining()) return fail(Replies.shuttingDown);
        // The apps' own networks have a larger share per address (an app's pool is one client), not all of it.
        if (!guards.admit(session, isTrusted(session.remoteAddress))) return fail(Replies.tooManyConnectionsFromIp);
        sessions.set(session, { at: performance.now(), messages: 0 });
        return undefined;
      },

      closed(session) {
        guards.closed(session);
        lookups.ended(session.id);
        // A transaction that never reached its dot sent nothing.
        endTransaction(pending.get(session));
        pending.delete(session);
        const started = sessions.get(session);
        if (started === undefined) return;
        // An app that opens a connection per message would otherwise log two lines a message at info.
        deps.logger[started.messages > 0 ? 'debug' : 'info']({
          event: 'connection',
          session: session.id,
          client: session.remoteAddress,
          helo: session.hostNameAppearsAs,
          user: session.user?.username ?? null,
          tls: session.secure,
          transactions: Math.max(0, session.transaction - 1),
          ms: Math.round(performance.now() - started.at),
        });
      },

      async auth(session, username, password) {
        const user = deps.config().inbound.users.get(username);
        const ok = await verifyPassword(password, user?.passwordHash ?? '').catch(() => false);
        if (ok && user) {
          guards.progressed(session);
          return { username: user.username } satisfies AuthIdentity;
        }
        deps.logger.warn({ event: 'auth-failed', session: session.id, client: session.remoteAddress, username });
        const mayRetry = await guards.authFailed(session);
        return fail(mayRetry ? Replies.authFailed : Replies.tooManyAuthFailures);
      },

      mailFrom(session, address) {
        guards.progressed(session);
        return decideAtMailFrom(address.address, declaredSize(address), session).then(
          (refusal) => (refusal ? fail(refusal) : undefined),
          () => fail(Replies.localError),
        );
      },

      rcptTo(session, address) {
        guards.progressed(session);
        if (!isAcceptableAddress(address.address)) return fail(Replies.badRecipientAddress);
        const open = pending.get(session);
        const tenant = open?.decision.tenant?.id ?? null;
        const policy = open && deps.suppression ? suppressionOf(open.config, tenant) : undefined;
        if (!policy?.enabled || policy.action !== 'refuse' || !deps.suppression) return undefined;
        // The store away: the recipient is taken (and checked again at delivery), never refused for it.
        return deps.suppression.check(suppressionTenant(tenant), [address.address], Date.now()).then(
          (found) => {
            const s = found.get(address.address.toLowerCase());
            return s ? fail(Replies.recipientSuppressed(`${s.source}: ${s.reason}`)) : undefined;
          },
          () => undefined,
        );
      },

      data(session, stream) {
        const dataEnded = guards.dataStarted(session);
        return completeData(stream, session)
          .then(
            ({ reply, report }): DataAnswer => ({
              reply: reply.code === 250 ? reply : fail(reply),
              // Outcomes.emit keeps a failing subscriber to itself (observer-failed): this cannot throw.
              afterReply: report,
            }),
            (err: unknown): DataAnswer => {
              warnings.warn({ event: 'data-failed', session: session.id, err: (err as Error).message }, 'a message could not be taken in (451 4.3.0)');
              return { reply: fail(Replies.localError) };
            },
          )
          .finally(dataEnded);
      },
    },
  );
  const isTrusted = (ip: string) => isInNetworks(trusted(deps.config()), ip);
  const guards = new SessionGuards(server, () => deps.config().inbound);

  /** Who sends, as whom, and where it goes: the reply that refuses it, or undefined (and the decision kept). */
  async function decideAtMailFrom(mailFrom: string, declared: number | undefined, session: InboundSession): Promise<SmtpReply | undefined> {
    if (deps.draining()) return Replies.shuttingDown;
    const config = deps.config();
    const auth = session.user;
    if (!auth && !isTrusted(session.remoteAddress)) return Replies.authRequired;
    if (mailFrom !== '' && !isAcceptableAddress(mailFrom)) return Replies.badSenderAddress;
    const platform = deps.platform();
    const budget = platform && lookups.of(session.id, session.remoteAddress, platform.settings);
    const found = await resolveTenants(mailFrom, auth, config, platform, budget);
    if (!found.ok) {
      const reply = 'overBudget' in found ? Replies.tenantLookupsExceeded : Replies.tenantLookupUnavailable;
      deps.outcomes.emit('senderRefused', { session: session.id, from: mailFrom, reason: found.reason, reply });
      return reply;
    }
    const decision = decide({ mailFrom }, auth, config, found.tenants);
    if (decision.kind === 'refused') {
      deps.outcomes.emit('senderRefused', { session: session.id, from: mailFrom, reason: decision.reason, reply: decision.reply });
      return decision.reply;
    }
    // A new MAIL FROM after RSET: the previous transaction sent nothing.
    endTransaction(pending.get(session));
    pending.delete(session);
    if (decision.mode === 'queue') {
      const full = spoolQuotaReached(decision, config);
      if (full) return full;
      const room = await deps.disk.reserve(declared, config.maxMessageSizeBytes);
      if (!room) return Replies.insufficientStorage;
      pending.set(session, { config, decision, room });
      return undefined;
    }
    // Pass-through has no later moment to slow down at: past a budget, the client must wait, and is told how long.
    const now = Date.now();
    const reserved = await deps.limiter.reserve(budgetsFor(decision.tenant, decision.route.upstream, now), 1, now);
    if (!reserved.ok) return Replies.tenantRateExceeded(decision.tenant?.id ?? decision.route.upstream.name, Math.min(86_400, Math.max(1, Math.ceil((reserved.retryAt - now) / 1000))));
    pending.set(session, { config, decision, settle: reserved.settle });
    return undefined;
  }

  /** The tenant's waiting mail at its share of the spool (a worker's part of it, with workers): its reply. */
  function spoolQuotaReached(decision: RouteDecision, config: Config): SmtpReply | undefined {
    const quota = { ...config.delivery.spool.perTenant, ...decision.tenant?.delivery.spool };
    const used = deps.scheduler.usageOf(decision.tenant?.id ?? null);
    const share = 1 / Math.max(1, config.workers);
    if (used.messages < Math.ceil(quota.maxMessages * share) && used.bytes < quota.maxBytes * share) return undefined;
    return Replies.tenantSpoolFull(decision.tenant?.id ?? 'none');
  }

  /** A message's line: the session is counted as described by it. */
  function answered(session: InboundSession, e: Answered): void {
    const known = sessions.get(session);
    if (known) known.messages++;
    deps.outcomes.emit('answered', e);
  }

  /** The final dot: the message goes through the intake of its mode; the reply is what the client hears. */
  async function completeData(stream: Readable, session: InboundSession): Promise<{ reply: SmtpReply; report?: () => void }> {
    const decided = pending.get(session);
    if (!decided) {
      stream.resume();
      return { reply: Replies.localError };
    }
    const tx = transactionOf(session, decided);
    if (decided.decision.mode === 'queue') {
      const answer = await acceptToQueue(stream, tx, deps).finally(() => decided.room?.release());
      pending.delete(session);
      const ms = msSince(tx);
      // After the reply is written (onData): the client does not wait for the log line and the trace.
      const report = () => {
        answer.report?.();
        answered(session, { tx: tx.log, mode: 'queue', reply: answer.reply, ...(answer.reason ? { reason: answer.reason } : {}), ms, warnings: answer.warnings });
      };
      return { reply: answer.reply, report };
    }
    const forwarded = await forwardInSession(stream, tx, deps);
    decided.settle?.(forwarded.kind === 'forwarded' ? forwarded.result.outcomes.filter((o) => o.status === 'sent').length : 0);
    pending.delete(session);
    if (forwarded.kind === 'refused') {
      answered(session, { tx: tx.log, mode: 'passthrough', reply: forwarded.reply, reason: forwarded.reason, ms: msSince(tx), warnings: [] });
      return { reply: forwarded.reply };
    }
    const { reply, result } = forwarded;
    answered(session, {
      tx: tx.log,
      mode: 'passthrough',
      reply,
      ms: msSince(tx),
      warnings: forwarded.warnings,
      forwarded: {
        envelopeFrom: tx.envelope.mailFrom,
        upstream: result.upstream,
        signed: tx.decision.dkim.kind === 'sign' && forwarded.warnings.length === 0,
        outcomes: result.outcomes,
        bytes: forwarded.bytes,
      },
    });
    return { reply };
  }

  return {
    listen: async (how = {}) => {
      // Port 0 would give each worker a port of its own: those share the cluster's one socket instead.
      const reusePort = how.reusePort === true && listener.port !== 0;
      const bound = await server.listen({ port: listener.port, host: listener.host, ...(reusePort ? { exclusive: true, reusePort: true } : {}) });
      return { host: bound.address, port: bound.port };
    },
    get listening() {
      return server.listening;
    },
    apply: (config) => server.applyLimits(limitsOf(config)),
    closeIdle: () => guards.closeIdle(),
    get sessions() {
      return server.sessionCount;
    },
    close: (graceMs) => server.closeWithin(graceMs),
    updateCertificate: (material) => server.updateCertificate(material),
  };
}
