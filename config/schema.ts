// The shape of the YAML file. Every object is strict so a misspelt key is an error, not a silent default.
// Cross-field rules (uniqueness across tenants, credentials without TLS) live in validate.ts, so this file
// reads as the reference for what each key may hold. The sections are in schema/, the words with a fixed set
// of values in vocabulary.ts.
import { z } from 'zod';
import { IDENTIFIERS, IDENTITY_CONFLICTS, OPS_SCOPES } from './vocabulary.js';
import { certificateName, hostname, opsToken, pemFile, seconds, tenantId } from './schema/fields.js';
import { delivery, inboundLimits, listener, messagePolicy, platformDkim, tenantSource, user } from './schema/settings.js';
import { suppressionSettings, tenantSchema, webhook } from './schema/tenant.js';
import { hostPolicy, maildirUpstream, smtpUpstream, tenantEnteredHosts, upstreamAuth, upstreamSchema } from './schema/upstream.js';

export { tenantSchema } from './schema/tenant.js';

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
      // preflight (POST /preflight), trace (GET /trace, the mail console's search and timeline), queue
      // (the console's queue view and its retry, hold, release and delete), drain (POST /drain,
      // /undrain). A token with `tenant` sees and acts on that tenant's mail only; `name` is who it is
      // in the log of what it did. An endpoint whose scope no token has is off (404).
      tokens: z
        .array(
          z.strictObject({
            token: opsToken,
            scopes: z
              .array(z.enum(OPS_SCOPES))
              .min(1)
              .refine((s) => new Set(s).size === s.length, 'must not repeat an entry'),
            tenant: tenantId.optional(),
            name: z.string().regex(/^[\w .@-]{1,64}$/, 'must be 1 to 64 letters, digits, spaces or . _ @ -').optional(),
          }),
        )
        .default([]),
      // What a tenant's token may ask a second (bursts up to `burst`), then 429: its requests are work
      // on the thread that takes every tenant's mail. The platform's own tokens are not counted.
      tenantRequests: z.strictObject({ perSecond: z.number().min(0.1).max(10_000).default(10), burst: z.int().min(1).max(100_000).default(30) }).prefault({}),
      // GET /metrics without a token. Default: only on a loopback listener with no token configured.
      openMetrics: z.boolean().optional(),
      // Label values in /metrics for the first `max` tenants seen (and those in `always`); the rest are
      // counted under "other", so a scrape stays small with thousands of tenants.
      tenantLabels: z
        .strictObject({ max: z.int().min(0).max(10_000).default(50), always: z.array(tenantId).default([]) })
        .prefault({}),
      // Serve the ops listener over TLS (PEM files, re-read when they change), so tokens, candidate
      // credentials and traced addresses never cross the network in cleartext.
      tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
    })
    .prefault({}),
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
    .prefault({}),
  identification: z
    .strictObject({
      order: z
        .array(z.enum(IDENTIFIERS))
        .min(1)
        .refine((o) => new Set(o).size === o.length, 'must not repeat an entry')
        .default([...IDENTIFIERS]),
      conflict: z.enum(IDENTITY_CONFLICTS).default('refuse'),
    })
    .prefault({}),
  smarthost: upstreamSchema,
  // Client certificates the operator installed, by name: what a platform record's upstream may refer to
  // (tls.clientCertificateName) without carrying key material. PEM files, re-read when they change. A
  // record may name one whose names include a domain its tenant owns, or that lists its tenant id
  // (tenants; "*" for a certificate of the platform's own that any tenant may present).
  clientCertificates: z.record(certificateName, z.strictObject({ cert: pemFile, key: pemFile, tenants: z.array(z.union([tenantId, z.literal('*')])).min(1).optional() })).default({}),
  // Checks on the hosts of the own upstreams of tenants in this file (not the smarthost). Off by default:
  // the operator wrote them.
  upstreamHosts: z
    .strictObject({
      denySpecialAddresses: hostPolicy.denySpecialAddresses.default(false),
      denyPrivateAddresses: hostPolicy.denyPrivateAddresses.default(false),
      allow: hostPolicy.allow,
      ports: hostPolicy.ports.default([]),
    })
    .prefault({}),
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
    .prefault({}),
  message: messagePolicy,
  dkim: platformDkim,
  tenants: z.array(tenantSchema).default([]),
  // More tenants from YAML files: each entry is a file or a directory of *.yaml / *.yml files, and each
  // file holds one tenant or a list of them. They are validated with the rest as one snapshot.
  tenantFiles: z.array(z.string().min(1)).default([]),
  // Tenants looked up from the platform over HTTP(S) when no YAML tenant claims the sender or AUTH user.
  tenantSource: tenantSource.optional(),
  // What became of each message, told to the platform: accepted, delivered, deferred, bounced, expired.
  events: z.strictObject({ webhook: webhook.optional() }).prefault({}),
  // Addresses a tenant's mail does not go to after their mailbox refused it for good (user unknown,
  // mailbox disabled), or by hand: per tenant, in Redis with limits.store.redis, else beside the spool.
  suppression: suppressionSettings,
  // Bounces by mail: mail through the smarthost leaves with a return path of its own per message,
  // <localPart>+<queue id>-<mac>@<domain> (VERP); point the domain's MX at listen, where the relay takes
  // the DSNs and abuse reports for those addresses only, and links each to its message and recipient.
  bounces: z
    .strictObject({
      domain: z.string().regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/, 'must be a domain, like bounces.platform.example'),
      localPart: z.string().regex(/^[a-z0-9._-]{1,32}$/).default('bounces'),
      // The key return paths are made with (so nobody can forge one); use ${ENV} or ${file:/path}.
      signingKey: z.string().min(32, 'must be at least 32 characters (make one: openssl rand -base64 32)'),
      listen: z.strictObject({ host: hostname.default('127.0.0.1'), port: z.int().min(0).max(65535).default(2526) }).prefault({}),
    })
    .optional(),
  // Event webhooks of the platform's smarthost provider, taken on the ops listener (open: each request is
  // checked by the provider's own signature): a bounce or complaint there suppresses the address and
  // becomes a delivery event of the message it is about. Use ${ENV} or ${file:/path}.
  providerEvents: z
    .strictObject({
      // POST /provider-events/mailgun: the account's HTTP webhook signing key.
      mailgun: z.strictObject({ signingKey: z.string().min(16) }).optional(),
      // POST /provider-events/sendgrid: the signed Event Webhook's verification key (base64, as shown).
      sendgrid: z.strictObject({ publicKey: z.string().regex(/^[A-Za-z0-9+/=\s]{60,400}$/, 'must be the base64 verification key SendGrid shows') }).optional(),
      // POST /provider-events/postmark: Postmark signs nothing, so its webhook URL carries HTTP basic auth
      // (https://username:password@relay/provider-events/postmark), and mail to smtpHosts carries a
      // metadata header with a mac under signingKey that Postmark echoes: only that links an event.
      postmark: z
        .strictObject({
          username: z.string().regex(/^[^:\s]{1,100}$/, 'must be a user name without ":" or spaces'),
          password: z.string().min(16).max(200),
          signingKey: z.string().min(32, 'must be at least 32 characters (make one: openssl rand -base64 32)'),
          smtpHosts: z.array(hostname).min(1).default(['smtp.postmarkapp.com', 'smtp-broadcasts.postmarkapp.com']),
        })
        .optional(),
      // POST /provider-events/ses: SES notifications through SNS, from these topics only. The signing
      // certificate is fetched over https from certificateHosts only (* is one DNS label); ca: a PEM file
      // of a private CA for that fetch, in place of the system store.
      ses: z
        .strictObject({
          topicArns: z.array(z.string().regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}$/, 'must be an SNS topic ARN, like arn:aws:sns:eu-west-1:123456789012:ses-events')).min(1),
          certificateHosts: z.array(z.string().regex(/^(\*|[a-z0-9-]+)(\.(\*|[a-z0-9-]+))+$/, 'must be a host name, * standing for one label')).default(['sns.*.amazonaws.com', 'sns.*.amazonaws.com.cn']),
          ca: z.string().min(1).optional(),
        })
        .optional(),
    })
    .prefault({}),
  // A local record of recent messages and their attempts, for `tenant-relay trace` and GET /trace.
  trace: z
    .strictObject({
      enabled: z.boolean().default(true),
      retentionDays: z.number().positive().max(366).default(7),
      // The store's size on disk, at most: past it the oldest messages go first.
      maxMegabytes: z.number().min(1).max(1_000_000).default(512),
    })
    .prefault({}),
});

export type RawConfig = z.output<typeof configSchema>;
export type RawTenant = z.output<typeof tenantSchema>;
export type RawTenantSource = z.output<typeof tenantSource>;
export type RawUpstream = z.output<typeof smtpUpstream> | z.output<typeof maildirUpstream>;
export type RawUpstreamAuth = z.output<typeof upstreamAuth>;
