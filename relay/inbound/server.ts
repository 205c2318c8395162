// The inbound edge: one smtp-server per listener. Each handler is thin: it checks what the SMTP layer
// owns (who may send, address syntax, size) and hands the decision to routing and the message to delivery.
import './reply-codes.js';
import './protocol-guards.js';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { SMTPServer, type SMTPServerAddress, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { Config, Listener } from '../../config/types.js';
import type { DeliveryEdge } from '../delivery/deliver.js';
import { formatReply, Replies, type SmtpReply, SmtpReplyError } from '../errors.js';
import { outboundEnvelope } from '../message/envelope.js';
import type { TraceInfo } from '../message/trace.js';
import type { TenantRates } from '../queue/rates.js';
import type { Scheduler } from '../queue/scheduler.js';
import type { Spool } from '../queue/spool.js';
import { acceptToQueue } from './accept.js';
import { forwardInSession } from './passthrough.js';
import type { Logger } from '../ops/log.js';
import type { RelayMetrics } from '../ops/metrics.js';
import type { SendTests } from '../ops/send-tests.js';
import { decide } from '../routing/decide.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';
import { resolveTenants } from '../tenancy/resolve.js';
import type { AuthIdentity, Envelope, RouteDecision } from '../types.js';
import { isAcceptableAddress } from './addresses.js';
import { readCertificate } from './certificates.js';
import { SessionGuards } from './guards.js';
import { isInNetworks, isLoopbackHost, networkList } from './networks.js';
import { verifyPassword } from './passwords.js';

export interface InboundDeps {
  /** The snapshot in force now; a transaction keeps the one it started with. */
  readonly config: () => Config;
  readonly edge: DeliveryEdge;
  readonly spool: Spool;
  readonly scheduler: Scheduler;
  /** Whether the spool has the configured free space (checked at most once a second). */
  readonly spoolHasRoom: () => Promise<boolean>;
  readonly rates: TenantRates;
  readonly metrics: RelayMetrics;
  readonly sendTests: SendTests;
  /** True once shutdown has begun: new connections and new transactions get 421. */
  readonly draining: () => boolean;
  readonly logger: Logger;
  /** The platform's tenants (the HTTP tenant source), when the config names one. */
  readonly platform?: () => PlatformTenants | undefined;
}

/** What one mail transaction carries from MAIL FROM to the final dot. */
interface Transaction {
  readonly config: Config;
  readonly decision: RouteDecision;
}

export interface InboundServer {
  readonly server: SMTPServer;
  /** Shutdown: closes every session that is not in the middle of DATA. */
  closeIdle(): void;
}

export function createInboundServer(listener: Listener, deps: InboundDeps): InboundServer {
  const transactions = new WeakMap<SMTPServerSession, Transaction>();
  const connectedAt = new WeakMap<SMTPServerSession, number>();
  const fail = (reply: SmtpReply) => {
    deps.metrics.refused(reply);
    return new SmtpReplyError(reply);
  };
  // Rebuilt only when the snapshot changes, not per connection.
  let trusted = { config: undefined as Config | undefined, list: networkList([]) };
  const trustedNetworks = (config: Config) => {
    if (trusted.config !== config) trusted = { config, list: networkList(config.inbound.allowUnauthenticatedFrom) };
    return trusted.list;
  };
  const startConfig = deps.config();
  const policy = () => deps.config().inbound;
  const guards = new SessionGuards(() => server, policy);
  // A password may cross only TLS or loopback. A plain listener on a network address offers no AUTH at
  // all (smtp-server would allow it in cleartext once STARTTLS is off); a STARTTLS one says 538 until TLS.
  const loopback = isLoopbackHost(listener.host);
  const disabled = [...(listener.tls === 'starttls' ? [] : ['STARTTLS']), ...(listener.tls === 'none' && !loopback ? ['AUTH'] : [])];

  const server = new SMTPServer({
    name: startConfig.hostname,
    banner: 'tenant-relay',
    hideENHANCEDSTATUSCODES: false,
    secure: listener.tls === 'implicit',
    ...readCertificate(listener),
    minVersion: 'TLSv1.2',
    disabledCommands: disabled,
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: true,
    allowInsecureAuth: loopback && listener.tls === 'none',
    size: startConfig.maxMessageSizeBytes,
    maxClients: startConfig.inbound.maxConnections,
    maxRecipients: startConfig.inbound.maxRecipients,
    // RFC 5321 4.5.3.1.4: 512 octets for a command line, CRLF included.
    maxCommandLength: 512,
    socketTimeout: startConfig.inbound.idleTimeoutMs,
    logger: false,

    onConnect(session, callback) {
      if (deps.draining()) return callback(fail(Replies.shuttingDown));
      if (!guards.admit(session)) return callback(fail(Replies.tooManyConnectionsFromIp));
      connectedAt.set(session, performance.now());
      callback();
    },

    onClose(session) {
      guards.closed(session);
      const started = connectedAt.get(session);
      if (started === undefined) return;
      deps.logger.info({
        event: 'connection',
        session: session.id,
        client: session.remoteAddress,
        helo: session.hostNameAppearsAs,
        user: (session.user as AuthIdentity | undefined)?.username ?? null,
        tls: session.secure,
        transactions: Math.max(0, session.transaction - 1),
        ms: Math.round(performance.now() - started),
      });
    },

    onAuth(auth, session, callback) {
      const user = deps.config().inbound.users.get(auth.username ?? '');
      verifyPassword(auth.password ?? '', user?.passwordHash ?? '').then(
        async (ok) => {
          if (ok && user) {
            guards.progressed(session);
            return callback(null, { user: { username: user.username } satisfies AuthIdentity });
          }
          deps.logger.warn({ event: 'auth-failed', session: session.id, client: session.remoteAddress, username: auth.username });
          const mayRetry = await guards.authFailed(session);
          callback(fail(mayRetry ? Replies.authFailed : Replies.tooManyAuthFailures));
        },
        () => callback(fail(Replies.authFailed)),
      );
    },

    onMailFrom(address: SMTPServerAddress, session, callback) {
      guards.progressed(session);
      if (deps.draining()) return callback(fail(Replies.shuttingDown));
      const config = deps.config();
      const auth = session.user as AuthIdentity | undefined;
      if (!auth && !isInNetworks(trustedNetworks(config), session.remoteAddress)) return callback(fail(Replies.authRequired));
      if (address.address !== '' && !isAcceptableAddress(address.address)) return callback(fail(Replies.badSenderAddress));
      resolveTenants(address.address, auth, config, deps.platform?.())
        .then(async (found) => {
          if (!found.ok) {
            deps.logger.warn({ event: 'refused', session: session.id, from: address.address, reason: found.reason });
            return fail(Replies.tenantLookupUnavailable);
          }
          const decision = decide({ mailFrom: address.address }, auth, config, found.tenants);
          if (decision.kind === 'refuse') {
            deps.logger.info({ event: 'refused', session: session.id, from: address.address, reason: decision.reason });
            return fail(decision.reply);
          }
          if (modeOf(decision, config) === 'queue') {
            if (!(await deps.spoolHasRoom())) return fail(Replies.insufficientStorage);
          } else if (!deps.rates.take(decision.tenant, Date.now())) {
            // Pass-through has no later moment to slow down at: past its rate, the tenant's client must wait.
            return fail(Replies.tenantRateExceeded(decision.tenant?.id ?? ''));
          }
          transactions.set(session, { config, decision });
          return undefined;
        })
        .then(
          (refusal) => callback(refusal ?? null),
          () => callback(fail(Replies.localError)),
        );
    },

    onRcptTo(address: SMTPServerAddress, session, callback) {
      guards.progressed(session);
      if (!isAcceptableAddress(address.address)) return callback(fail(Replies.badRecipientAddress));
      callback();
    },

    onData(stream: SMTPServerDataStream, session, callback) {
      const dataEnded = guards.dataStarted(session);
      handleData(stream, session, transactions.get(session), deps)
        .then(
          (reply) => (reply.code === 250 ? callback(null, `${reply.enhanced} ${reply.text}`) : callback(fail(reply))),
          (err) => {
            deps.logger.error({ event: 'data-failed', session: session.id, err });
            callback(fail(Replies.localError));
          },
        )
        .finally(dataEnded);
    },
  });

  // Without this, one client's ECONNRESET would end the process.
  server.on('error', (err) => deps.logger.debug({ event: 'client-error', err: err.message }));
  return { server, closeIdle: () => guards.closeIdle() };
}

// A pass-through message's id (Received, logs): unique per process run by its random tag and counter.
const ID_TAG = randomBytes(4).toString('hex');
let idCounter = 0;
const messageId = () => `${ID_TAG}${(idCounter++).toString(16).padStart(8, '0')}`;

const modeOf = (decision: RouteDecision, config: Config) => decision.tenant?.delivery.mode ?? config.delivery.mode;

async function handleData(
  stream: SMTPServerDataStream,
  session: SMTPServerSession,
  tx: Transaction | undefined,
  deps: InboundDeps,
): Promise<SmtpReply> {
  if (!tx) {
    stream.resume();
    return Replies.localError;
  }
  const { decision, config } = tx;
  const started = performance.now();
  const received: Envelope = {
    mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
    rcptTo: session.envelope.rcptTo.map((r) => r.address),
  };
  const envelope = outboundEnvelope(received, decision);
  const trace: Omit<TraceInfo, 'id'> = {
    receivedAt: new Date(),
    byHost: config.hostname,
    clientAddress: session.remoteAddress,
    helo: session.hostNameAppearsAs,
    clientHostname: session.clientHostname,
    tls: session.secure,
    authenticated: Boolean(session.user),
    recipients: received.rcptTo,
  };
  const log = { session: session.id, tenant: decision.tenant?.id ?? null, from: received.mailFrom, rcpt: received.rcptTo.length };

  if (modeOf(decision, config) === 'queue') {
    const accepted = await acceptToQueue(stream, envelope, decision, config, trace, deps.spool, deps.scheduler);
    for (const warning of accepted.warnings) deps.logger.warn({ event: 'message-warning', ...log, warning });
    const event = accepted.reply.code === 250 ? 'queued' : 'refused';
    if (event === 'queued') deps.metrics.accepted.inc({ tenant: decision.tenant?.id ?? 'none', mode: 'queue' });
    deps.logger.info({ event, ...log, reason: accepted.reason, reply: formatReply(accepted.reply), ms: Math.round(performance.now() - started) });
    return accepted.reply;
  }
  return forwardInSession(stream, envelope, decision, config, { ...trace, id: messageId() }, deps, log, started);
}
