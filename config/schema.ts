// The shape of the YAML file. Every object is strict so a misspelt key is an error, not a silent default.
// Cross-field rules (uniqueness across tenants, credentials without TLS) live in validate.ts, so this file
// reads as the reference for what each key may hold.
// Compiles each schema into a plain function on its first parse (before any schema below is built): a
// 10,000-tenant config validates in two thirds of the time.
import 'zod/compile';
import { z } from 'zod';
import { asciiDomain } from './directory.js';

const DOMAIN = /^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/i;
// IDN domains are written as people write them and checked in their ASCII (punycode) form.
const ADDRESS = /^[^\s@<>"()[\]\\,;:]{1,64}@[^\s@<>"()[\]\\,;:]{1,255}$/;

// Explicit letter cases, not a /i flag: the JSON Schema export keeps only the pattern.
const hostname = z.string().min(1).regex(/^[A-Za-z0-9.:-]+$/, 'must be a host name or IP address');
const port = z.int().min(1, 'must be between 1 and 65535').max(65535, 'must be between 1 and 65535');
const address = z
  .string()
  .regex(ADDRESS, 'must be an email address like user@example.com')
  .refine((a) => DOMAIN.test(asciiDomain(a.slice(a.lastIndexOf('@') + 1))), 'must have a valid domain');
const domain = z.string().refine((d) => DOMAIN.test(asciiDomain(d)), 'must be a domain name like example.com');
// "*.example.com" is the usual wildcard: every subdomain of example.com, not example.com itself.
const domainPattern = z
  .string()
  .refine((d) => DOMAIN.test(asciiDomain(d.startsWith('*.') ? d.slice(2) : d)), 'must be a domain like example.com or *.example.com');
const seconds = z.number().positive().max(86_400);
const tenantId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, 'must be letters, digits, "-" or "_" (at most 63)');
const opsToken = z.string().min(16, 'must be at least 16 characters');

/** What an ops token may do (README: Operations). */
export const OPS_SCOPES = ['metrics', 'send-test', 'preflight', 'trace', 'drain'] as const;

export const TLS_MODES = ['implicit', 'starttls', 'none'] as const;

// A token endpoint: https, or plain http to this machine only (development, tests).
const tokenUrl = z.string().regex(/^https?:\/\/[^\s/?#]+(\/[^\s#]*)?$/, 'must be an http(s) URL, like https://login.example/token');

// How the relay logs in to an upstream. `password`: what the flat username/password keys say.
// `oauth2`: XOAUTH2 with an access token the relay gets for the mailbox, unattended.
const passwordAuth = z.strictObject({
  kind: z.literal('password'),
  username: z.string().min(1),
  password: z.string().min(1),
});
// Microsoft 365: an Entra app with SMTP.SendAsApp, its service principal granted the mailbox
// (client credentials, with a client secret or a certificate).
const microsoftAuth = z.strictObject({
  kind: z.literal('oauth2'),
  provider: z.literal('microsoft'),
  // The Entra tenant: its id (a GUID) or a verified domain.
  tenantId: z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be the Entra tenant id (a GUID) or one of its domains'),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1).optional(),
  // Or a certificate registered on the app: its PEM and private key (a signed client assertion).
  certificate: z.string().min(1).optional(),
  privateKey: z.string().min(1).optional(),
  // The mailbox the relay sends as (the XOAUTH2 user).
  mailbox: address,
  scope: z.string().min(1).default('https://outlook.office365.com/.default'),
  // Default: https://login.microsoftonline.com/<tenantId>/oauth2/v2.0/token
  tokenUrl: tokenUrl.optional(),
  // PEM file of a private CA to trust for the token endpoint (config files only).
  ca: z.string().min(1).optional(),
});
// Google Workspace: a service account with domain-wide delegation for https://mail.google.com/.
const googleAuth = z.strictObject({
  kind: z.literal('oauth2'),
  provider: z.literal('google'),
  serviceAccount: address,
  privateKey: z.string().min(1),
  mailbox: address,
  scope: z.string().min(1).default('https://mail.google.com/'),
  // Default: https://oauth2.googleapis.com/token
  tokenUrl: tokenUrl.optional(),
  // PEM file of a private CA to trust for the token endpoint (config files only).
  ca: z.string().min(1).optional(),
});
// Any server that takes XOAUTH2 with a token from an OAuth 2.0 client-credentials grant.
const clientCredentialsAuth = z.strictObject({
  kind: z.literal('oauth2'),
  provider: z.literal('client-credentials'),
  tokenUrl,
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  scope: z.string().min(1).optional(),
  mailbox: address,
  // PEM file of a private CA to trust for the token endpoint (config files only).
  ca: z.string().min(1).optional(),
});
export const OAUTH2_PROVIDERS = ['microsoft', 'google', 'client-credentials'] as const;
const upstreamAuth = z.discriminatedUnion('kind', [passwordAuth, z.discriminatedUnion('provider', [microsoftAuth, googleAuth, clientCredentialsAuth])]);

// What the upstream's mailbox may send, shared by every tenant that sends through it (Microsoft 365:
// 30 messages a minute, 10,000 recipients in a sliding 24 hours).
const mailboxLimits = z.strictObject({
  messagesPerMinute: z.number().positive().optional(),
  messagesPerDay: z.int().positive().optional(),
  recipientsPerDay: z.int().positive().optional(),
});

const smtpUpstream = z.strictObject({
  kind: z.literal('smtp'),
  host: hostname,
  port: port.optional(),
  tls: z.enum(TLS_MODES),
  auth: upstreamAuth.optional(),
  // The same as auth: { kind: password, username, password }.
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  limits: mailboxLimits.optional(),
  ca: z.string().min(1).optional(),
  servername: hostname.optional(),
  allowInsecureAuth: z.boolean().default(false),
  timeoutSeconds: seconds.default(60),
  connectTimeoutSeconds: seconds.default(15),
  maxConnections: z.int().min(1).max(100).default(5),
});

const maildirUpstream = z.strictObject({
  kind: z.literal('maildir'),
  path: z.string().min(1).optional(),
});

// `kind` may be left out for the common case, an SMTP server.
const upstreamSchema = z.preprocess(
  (v) => (v && typeof v === 'object' && !Array.isArray(v) && !('kind' in v) ? { kind: 'smtp', ...v } : v),
  z.discriminatedUnion('kind', [smtpUpstream, maildirUpstream]),
);

export const LISTENER_TLS = ['none', 'starttls', 'implicit'] as const;

const listener = z.strictObject({
  host: hostname.default('127.0.0.1'),
  // 0 asks the system for any free port: tests and one-off runs.
  port: z.int().min(0, 'must be between 0 and 65535').max(65535, 'must be between 0 and 65535').default(2525),
  // none: plain SMTP; starttls: offers STARTTLS; implicit: TLS from the first byte (port 465 style).
  tls: z.enum(LISTENER_TLS).default('none'),
  // PEM files, re-read when they change on disk (certificate renewal needs no restart).
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
});

const user = z.strictObject({
  username: z.string().min(1).max(256),
  passwordHash: z.string().regex(/^scrypt\$/, 'must be a hash made by `tenant-relay hash-password`'),
});

// Header names the relay writes or removes: an RFC 5322 field name, nothing that could smuggle a line.
const headerName = z.string().regex(/^[A-Za-z0-9-]{1,76}$/, 'must be a header name like X-Tenant');

const dkimKey = {
  selector: domain.optional(),
  // Default: the domain of the From header the message leaves with, so the signature aligns for DMARC.
  signingDomain: domain.optional(),
  // PEM text (RSA or ed25519): use ${file:/path} or ${ENV}.
  privateKey: z.string().min(1).optional(),
};

export const DELIVERY_MODES = ['queue', 'passthrough'] as const;

// How much of the shared spool one tenant's waiting mail may take; past it, that tenant's clients get
// 452 4.3.1 and nobody else does.
const spoolQuota = {
  maxMessages: z.int().min(1).max(100_000_000),
  maxMegabytes: z.number().positive().max(100_000_000),
};

const tenantDelivery = z
  .strictObject({
    mode: z.enum(DELIVERY_MODES).optional(),
    // After temporary failures lasting this long, send through the global smarthost instead (never on a 5xx).
    fallbackToSmarthostAfterMinutes: z.number().positive().optional(),
    // This tenant's share of the spool, in place of delivery.spool.perTenant.
    spool: z.strictObject({ maxMessages: spoolQuota.maxMessages.optional(), maxMegabytes: spoolQuota.maxMegabytes.optional() }).optional(),
  })
  .default({});

export const DELIVERY_EVENT_TYPES = ['accepted', 'held', 'delivered', 'deferred', 'bounced', 'expired'] as const;

// Where delivery events go: the platform's HTTP endpoint, each request signed the Standard Webhooks way.
const webhook = z.strictObject({
  // https, or plain http to a loopback address.
  url: z.string().regex(/^https?:\/\/[^\s/?#]+(\/[^\s#]*)?$/, 'must be an http(s) URL, like https://platform.internal/relay/events'),
  // The signing key: whsec_ and the base64 of 24 to 64 random bytes (openssl rand -base64 32); use
  // ${ENV} or ${file:/path}.
  secret: z.string().regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'must be whsec_ followed by base64 (make one with: echo whsec_$(openssl rand -base64 32))'),
  // PEM file of a private CA for the endpoint, in place of the system store.
  ca: z.string().min(1).optional(),
  // The kinds of event sent.
  types: z
    .array(z.enum(DELIVERY_EVENT_TYPES))
    .min(1)
    .refine((t) => new Set(t).size === t.length, 'must not repeat an entry')
    .default([...DELIVERY_EVENT_TYPES]),
  // Deadline of one request.
  timeoutSeconds: z.number().positive().max(120).default(10),
  // Events in one request, at most.
  maxBatchEvents: z.int().min(1).max(1000).default(100),
  // A request's body, at most (one event may exceed it alone). A receiver answering 413 gets smaller ones.
  maxBatchKilobytes: z.int().min(1).max(16_384).default(512),
  // Events kept for a webhook that does not answer; past it the oldest are dropped (counted, logged).
  maxBacklogEvents: z.int().min(10).max(10_000_000).default(100_000),
});

export const tenantSchema = z.strictObject({
  id: tenantId,
  match: z
    .strictObject({
      authUsers: z.array(z.string().min(1)).default([]),
      addresses: z.array(address).default([]),
      domains: z.array(domainPattern).default([]),
    })
    .default({ authUsers: [], addresses: [], domains: [] }),
  upstream: upstreamSchema.optional(),
  identity: z
    .strictObject({
      from: address.optional(),
      displayName: z.string().min(1).max(256).optional(),
      replyTo: address.optional(),
      rewriteEnvelopeSender: z.boolean().default(false),
    })
    .default({ rewriteEnvelopeSender: false }),
  dkim: z
    .strictObject({
      ...dkimKey,
      disablePlatformDkim: z.boolean().default(false),
    })
    .default({ disablePlatformDkim: false }),
  delivery: tenantDelivery,
  limits: z
    .strictObject({
      messagesPerMinute: z.number().positive().optional(),
      messagesPerDay: z.int().positive().optional(),
      // In a sliding 24 hours, as Microsoft 365 counts them.
      recipientsPerDay: z.int().positive().optional(),
    })
    .optional(),
  // This tenant's own webhook, for its events only (config files only).
  events: z.strictObject({ webhook: webhook.optional() }).optional(),
});

const messagePolicy = z
  .strictObject({
    replyToOriginalFrom: z.boolean().default(true),
    overrideReplyTo: z.boolean().default(false),
    originalFromHeader: headerName.optional(),
    traceHeader: headerName.optional(),
    removeHeaders: z.array(headerName).default([]),
  })
  .default({ replyToOriginalFrom: true, overrideReplyTo: false, removeHeaders: [] });

const delivery = z
  .strictObject({
    mode: z.enum(DELIVERY_MODES).default('queue'),
    spool: z
      .strictObject({
        path: z.string().min(1).default('var/spool'),
        // Off only for throwaway test relays: a 250 then means "in the page cache", not "on disk".
        fsync: z.boolean().default(true),
        // Free space kept on the spool's volume: under it, MAIL FROM (queue mode) gets 452 4.3.1, counting
        // what the transactions being received may still write.
        minFreeMegabytes: z.number().min(0).default(100),
        // Each tenant's waiting mail, at most (per tenant: tenants[].delivery.spool). Mail of no tenant
        // counts as one more tenant.
        perTenant: z
          .strictObject({ maxMessages: spoolQuota.maxMessages.default(50_000), maxMegabytes: spoolQuota.maxMegabytes.default(2048) })
          .default({ maxMessages: 50_000, maxMegabytes: 2048 }),
      })
      .default({ path: 'var/spool', fsync: true, minFreeMegabytes: 100, perTenant: { maxMessages: 50_000, maxMegabytes: 2048 } }),
    retry: z
      .strictObject({
        minSeconds: z.number().positive().default(300),
        maxSeconds: z.number().positive().default(3600),
        jitter: z.number().min(0).max(1).default(0.2),
        maxLifetimeHours: z.number().positive().default(120),
      })
      .default({ minSeconds: 300, maxSeconds: 3600, jitter: 0.2, maxLifetimeHours: 120 }),
    maxConcurrentDeliveries: z.int().min(1).max(10_000).default(100),
    // How often the spool is re-read for changes made by `tenant-relay queue` commands.
    scanSeconds: z.number().positive().max(3600).default(5),
  })
  .default({
    mode: 'queue',
    spool: { path: 'var/spool', fsync: true, minFreeMegabytes: 100, perTenant: { maxMessages: 50_000, maxMegabytes: 2048 } },
    retry: { minSeconds: 300, maxSeconds: 3600, jitter: 0.2, maxLifetimeHours: 120 },
    maxConcurrentDeliveries: 100,
    scanSeconds: 5,
  });

const hostPolicy = {
  // Refuse hosts that resolve to loopback, link-local, cloud metadata and the other IANA special-purpose
  // addresses, and IPv6 forms that wrap an IPv4 address (mapped, compatible, SIIT, NAT64, 6to4).
  denySpecialAddresses: z.boolean(),
  // Refuse private ranges too (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7).
  denyPrivateAddresses: z.boolean(),
  // Addresses or CIDR ranges allowed whatever the two above say.
  allow: z.array(z.string().min(1)).default([]),
  // The ports such an upstream may use; [] allows any.
  ports: z.array(port),
};
const MAIL_PORTS = [25, 465, 587, 2525];
/** The policy for upstreams a tenant's side chose: internal addresses refused, mail ports only. */
const tenantEnteredHosts = z
  .strictObject({
    denySpecialAddresses: hostPolicy.denySpecialAddresses.default(true),
    denyPrivateAddresses: hostPolicy.denyPrivateAddresses.default(true),
    allow: hostPolicy.allow,
    ports: hostPolicy.ports.default(MAIL_PORTS),
  })
  .default({ denySpecialAddresses: true, denyPrivateAddresses: true, allow: [], ports: MAIL_PORTS });

const tenantSource = z.strictObject({
  // GET {url}/tenants/lookup?auth=…|sender=…|id=… answers one tenant record (see the README's contract).
  url: z.string().regex(/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/, 'must be an http(s) URL without query, like https://platform.internal/relay'),
  // Sent as "Authorization: Bearer <token>"; use ${ENV} or ${file:/path}.
  token: z.string().min(1).optional(),
  // PEM file of a private CA to trust for the platform, in place of the system store.
  ca: z.string().min(1).optional(),
  // A lookup that takes longer is abandoned (stale record served if there is one, else 451 4.3.0).
  timeoutSeconds: z.number().positive().max(60).default(2),
  // How long an answer is fresh.
  cacheSeconds: z.number().positive().max(86_400).default(60),
  // How long past that an answer may still be served, while it is refreshed or while the source is down.
  staleSeconds: z.number().min(0).max(7 * 86_400).default(3600),
  // How long "no such tenant" is remembered.
  notFoundCacheSeconds: z.number().min(0).max(86_400).default(30),
  maxEntries: z.int().min(1).max(10_000_000).default(10_000),
  // Lookups that reach the platform (not answered from the cache), at most, per SMTP session and per
  // client address a minute; past them: 451 4.7.1.
  maxLookupsPerSession: z.int().min(1).max(10_000).default(20),
  maxLookupsPerClientPerMinute: z.int().min(1).max(1_000_000).default(120),
  // A Redis channel (on limits.store.redis) where the platform publishes a tenant id, or *, when it changes
  // a tenant: every relay drops its cached record at once.
  invalidationChannel: z.string().min(1).max(200).optional(),
  // Tenant admins type these upstreams in: internal addresses and ports other than mail's are refused
  // unless allowed here.
  upstreamHosts: tenantEnteredHosts,
});

export const DKIM_FAILURE_POLICIES = ['send-unsigned', 'tempfail', 'reject'] as const;

const platformDkim = z
  .strictObject({
    ...dkimKey,
    onFailure: z.enum(DKIM_FAILURE_POLICIES).default('send-unsigned'),
  })
  .default({ onFailure: 'send-unsigned' });

export const IDENTIFIERS = ['auth', 'address', 'domain'] as const;

const INBOUND_DEFAULTS = {
  tenantUsersSendAs: 'own-senders' as const,
  checkHeaderFrom: false,
  bareLineEndings: 'reject' as const,
  maxRecipients: 100,
  maxConnections: 500,
  maxConnectionsPerIp: 20,
  maxConnectionsPerTrustedIp: 100,
  greetingDelaySeconds: 0.1,
  reverseLookup: true,
  reverseLookupTimeoutSeconds: 1,
  idleTimeoutSeconds: 60,
  progressTimeoutSeconds: 300,
  dataTimeoutSeconds: 600,
  maxAuthFailures: 3,
  authFailureDelaySeconds: 1,
};

const inboundLimits = {
  // own-senders: a user of a tenant may only send as that tenant's addresses and domains (553 5.7.1).
  tenantUsersSendAs: z.enum(['own-senders', 'any-sender']).default(INBOUND_DEFAULTS.tenantUsersSendAs),
  // Also require the header From of a tenant user's message to be one of the tenant's.
  checkHeaderFrom: z.boolean().default(INBOUND_DEFAULTS.checkHeaderFrom),
  // A bare CR, bare LF or NUL in DATA (SMTP smuggling): reject with 550 5.5.2, or normalize to CRLF.
  bareLineEndings: z.enum(['reject', 'normalize']).default(INBOUND_DEFAULTS.bareLineEndings),
  maxRecipients: z.int().min(1).max(100_000).default(INBOUND_DEFAULTS.maxRecipients),
  maxConnections: z.int().min(1).max(1_000_000).default(INBOUND_DEFAULTS.maxConnections),
  // Connections from one address outside allowUnauthenticatedFrom.
  maxConnectionsPerIp: z.int().min(1).max(1_000_000).default(INBOUND_DEFAULTS.maxConnectionsPerIp),
  // Connections from one address inside allowUnauthenticatedFrom: larger (an app server's pool of 50
  // connections is one client), but never every slot, so one app cannot lock the others out.
  maxConnectionsPerTrustedIp: z.int().min(1).max(1_000_000).default(INBOUND_DEFAULTS.maxConnectionsPerTrustedIp),
  // Clients outside allowUnauthenticatedFrom wait this long for the greeting, and one that talks first is
  // refused (an early-talker check, like Postfix's postscreen greet pause). Trusted clients never wait.
  greetingDelaySeconds: z.number().min(0).max(30).default(INBOUND_DEFAULTS.greetingDelaySeconds),
  // Look up the client's name (reverse DNS) for the Received header, as Postfix's smtpd_peername_lookup;
  // never for a loopback client, and never longer than the timeout.
  reverseLookup: z.boolean().default(INBOUND_DEFAULTS.reverseLookup),
  reverseLookupTimeoutSeconds: z.number().positive().max(1.5).default(INBOUND_DEFAULTS.reverseLookupTimeoutSeconds),
  // Silence this long closes the connection.
  idleTimeoutSeconds: seconds.default(INBOUND_DEFAULTS.idleTimeoutSeconds),
  // A session must complete an AUTH, MAIL, RCPT or DATA this often, however busy it keeps the line.
  progressTimeoutSeconds: seconds.default(INBOUND_DEFAULTS.progressTimeoutSeconds),
  // DATA must reach its final dot within this long, however slowly it drips.
  dataTimeoutSeconds: seconds.default(INBOUND_DEFAULTS.dataTimeoutSeconds),
  maxAuthFailures: z.int().min(1).max(100).default(INBOUND_DEFAULTS.maxAuthFailures),
  authFailureDelaySeconds: z.number().min(0).max(60).default(INBOUND_DEFAULTS.authFailureDelaySeconds),
};

export const configSchema = z.strictObject({
  hostname: hostname.default('tenant-relay.localhost'),
  // The HTTP listener for /metrics, /healthz and /readyz.
  ops: z
    .strictObject({
      enabled: z.boolean().default(true),
      host: hostname.default('127.0.0.1'),
      port: z.int().min(0).max(65535).default(9025),
      // How long SIGTERM lets sessions in DATA and deliveries in flight finish.
      shutdownGraceSeconds: seconds.default(30),
      // On SIGTERM with mail still queued: keep delivering (new mail refused, 421 4.3.2) up to this long
      // before stopping. 0: stop after shutdownGraceSeconds, the queue stays on disk for the next start.
      drainSeconds: z.number().min(0).max(86_400).default(0),
      // A bearer token with every scope below (the operator's); use ${ENV} or ${file:/path}.
      token: opsToken.optional(),
      // Bearer tokens with some scopes each: metrics (GET /metrics), send-test (GET /send-test/<token>),
      // preflight (POST /preflight), trace (GET /trace), drain (POST /drain, /undrain). A token with
      // `tenant` sees that tenant's mail only (trace). An endpoint whose scope no token has is off (404).
      tokens: z
        .array(
          z.strictObject({
            token: opsToken,
            scopes: z
              .array(z.enum(OPS_SCOPES))
              .min(1)
              .refine((s) => new Set(s).size === s.length, 'must not repeat an entry'),
            tenant: tenantId.optional(),
          }),
        )
        .default([]),
      // GET /metrics without a token. Default: only on a loopback listener with no token configured.
      openMetrics: z.boolean().optional(),
      // Label values in /metrics for the first `max` tenants seen (and those in `always`); the rest are
      // counted under "other", so a scrape stays small with thousands of tenants.
      tenantLabels: z
        .strictObject({ max: z.int().min(0).max(10_000).default(50), always: z.array(tenantId).default([]) })
        .default({ max: 50, always: [] }),
      // Serve the ops listener over TLS (PEM files, re-read when they change), so tokens, candidate
      // credentials and traced addresses never cross the network in cleartext.
      tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
    })
    .default({ enabled: true, host: '127.0.0.1', port: 9025, shutdownGraceSeconds: 30, drainSeconds: 0, tokens: [], tenantLabels: { max: 50, always: [] } }),
  // Processes that share the listeners, each with its own spool under delivery.spool.path: a number, or
  // auto (one per core).
  workers: z.union([z.int().min(1).max(256), z.literal('auto')]).default(1),
  listen: z.array(listener).min(1).default([{ host: '127.0.0.1', port: 2525, tls: 'none' }]),
  maxMessageSizeBytes: z
    .int()
    .min(1024)
    .max(1024 ** 3)
    .default(25 * 1024 * 1024),
  inbound: z
    .strictObject({
      allowUnauthenticatedFrom: z.array(z.string().min(1)).default(['127.0.0.0/8', '::1/128']),
      users: z.array(user).default([]),
      ...inboundLimits,
    })
    .default({ allowUnauthenticatedFrom: ['127.0.0.0/8', '::1/128'], users: [], ...INBOUND_DEFAULTS }),
  identification: z
    .strictObject({
      order: z
        .array(z.enum(IDENTIFIERS))
        .min(1)
        .refine((o) => new Set(o).size === o.length, 'must not repeat an entry')
        .default([...IDENTIFIERS]),
      conflict: z.enum(['refuse', 'prefer-auth']).default('refuse'),
    })
    .default({ order: [...IDENTIFIERS], conflict: 'refuse' }),
  smarthost: upstreamSchema,
  // Checks on the hosts of the own upstreams of tenants in this file (not the smarthost). Off by default:
  // the operator wrote them.
  upstreamHosts: z
    .strictObject({
      denySpecialAddresses: hostPolicy.denySpecialAddresses.default(false),
      denyPrivateAddresses: hostPolicy.denyPrivateAddresses.default(false),
      allow: hostPolicy.allow,
      ports: hostPolicy.ports.default([]),
    })
    .default({ denySpecialAddresses: false, denyPrivateAddresses: false, allow: [], ports: [] }),
  // The same checks for the tenants of tenantFiles: often written by automation from what tenant admins
  // typed, so internal addresses and ports other than mail's are refused unless allowed here.
  tenantFileUpstreamHosts: tenantEnteredHosts,
  delivery,
  // Where sending limits are counted. Without a store, in each process's memory.
  limits: z
    .strictObject({
      store: z
        .strictObject({
          // Redis 7 (or Valkey): every process and replica draws on the same budgets.
          redis: z.strictObject({
            // redis://[:password@]host:port/db, or rediss:// for TLS; use ${ENV} for a password.
            url: z.string().regex(/^rediss?:\/\/[^\s/?#]+(\/\d{1,2})?$/, 'must be a redis:// or rediss:// URL, like redis://redis:6379/0'),
            keyPrefix: z.string().min(1).max(64).default('tenant-relay:'),
            // The key every relay signs what it shares through Redis with (send-test outcomes, its
            // heartbeat), and names shared mailbox budgets with: the same on every relay, kept secret
            // (openssl rand -base64 32); use ${ENV} or ${file:/path}. What Redis hands back unsigned is ignored.
            signingKey: z.string().min(32, 'must be at least 32 characters (make one: openssl rand -base64 32)'),
            // PEM file of a private CA for rediss://, in place of the system store.
            ca: z.string().min(1).optional(),
            // Deadline of one call; past it, and while Redis is down, limits are counted locally.
            timeoutMilliseconds: z.int().min(10).max(10_000).default(250),
          }),
        })
        .optional(),
      // While the store cannot be reached, each process allows this share of every budget. Default:
      // 1 / the number of relay processes that were seen last.
      localShare: z.number().positive().max(1).optional(),
    })
    .default({}),
  message: messagePolicy,
  dkim: platformDkim,
  tenants: z.array(tenantSchema).default([]),
  // More tenants from YAML files: each entry is a file or a directory of *.yaml / *.yml files, and each
  // file holds one tenant or a list of them. They are validated with the rest as one snapshot.
  tenantFiles: z.array(z.string().min(1)).default([]),
  // Tenants looked up from the platform over HTTP(S) when no YAML tenant claims the sender or AUTH user.
  tenantSource: tenantSource.optional(),
  // What became of each message, told to the platform: accepted, delivered, deferred, bounced, expired.
  events: z.strictObject({ webhook: webhook.optional() }).default({}),
  // A local record of recent messages and their attempts, for `tenant-relay trace` and GET /trace.
  trace: z
    .strictObject({
      enabled: z.boolean().default(true),
      retentionDays: z.number().positive().max(366).default(7),
      // The store's size on disk, at most: past it the oldest messages go first.
      maxMegabytes: z.number().min(1).max(1_000_000).default(512),
    })
    .default({ enabled: true, retentionDays: 7, maxMegabytes: 512 }),
});

export type RawConfig = z.output<typeof configSchema>;
export type RawTenant = z.output<typeof tenantSchema>;
export type RawTenantSource = z.output<typeof tenantSource>;
export type RawUpstream = z.output<typeof smtpUpstream> | z.output<typeof maildirUpstream>;
export type RawUpstreamAuth = z.output<typeof upstreamAuth>;
