// The relay-wide sections of the config file but the top level: listeners, inbound limits and users, the
// message policy, delivery and the spool, the platform's tenant source and DKIM key.
import { z } from 'zod';
import { BARE_LINE_ENDINGS, DELIVERY_MODES, DKIM_FAILURE_POLICIES, SEND_AS_POLICIES, TLS_MODES } from '../vocabulary.js';
import { headerName, hostname, seconds } from './fields.js';
import { dkimKey, spoolQuota } from './tenant.js';
import { tenantEnteredHosts } from './upstream.js';

export const listener = z.strictObject({
  host: hostname.default('127.0.0.1'),
  // 0 asks the system for any free port: tests and one-off runs.
  port: z.int().min(0, 'must be between 0 and 65535').max(65535, 'must be between 0 and 65535').default(2525),
  // none: plain SMTP; starttls: offers STARTTLS; implicit: TLS from the first byte (port 465 style).
  tls: z.enum(TLS_MODES).default('none'),
  // PEM files, re-read when they change on disk (certificate renewal needs no restart).
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
});

export const user = z.strictObject({
  username: z.string().min(1).max(256),
  passwordHash: z.string().regex(/^scrypt\$/, 'must be a hash made by `tenant-relay hash-password`'),
});

export const messagePolicy = z
  .strictObject({
    replyToOriginalFrom: z.boolean().default(true),
    overrideReplyTo: z.boolean().default(false),
    originalFromHeader: headerName.optional(),
    traceHeader: headerName.optional(),
    removeHeaders: z.array(headerName).default([]),
  })
  .prefault({});

export const delivery = z
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
          .prefault({}),
      })
      .prefault({}),
    retry: z
      .strictObject({
        minSeconds: z.number().positive().default(300),
        maxSeconds: z.number().positive().default(3600),
        jitter: z.number().min(0).max(1).default(0.2),
        maxLifetimeHours: z.number().positive().default(120),
      })
      .prefault({}),
    maxConcurrentDeliveries: z.int().min(1).max(10_000).default(100),
    // How often the spool is re-read for changes made by `tenant-relay queue` commands.
    scanSeconds: z.number().positive().max(3600).default(5),
  })
  .prefault({});

export const tenantSource = z.strictObject({
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

export const platformDkim = z
  .strictObject({
    ...dkimKey,
    onFailure: z.enum(DKIM_FAILURE_POLICIES).default('send-unsigned'),
  })
  .prefault({});

export const inboundLimits = {
  // own-senders: a user of a tenant may only send as that tenant's addresses and domains (553 5.7.1).
  tenantUsersSendAs: z.enum(SEND_AS_POLICIES).default('own-senders'),
  // Also require the header From of a tenant user's message to be one of the tenant's.
  checkHeaderFrom: z.boolean().default(false),
  // A bare CR, bare LF or NUL in DATA (SMTP smuggling): reject with 550 5.5.2, or normalize to CRLF.
  bareLineEndings: z.enum(BARE_LINE_ENDINGS).default('reject'),
  maxRecipients: z.int().min(1).max(100_000).default(100),
  maxConnections: z.int().min(1).max(1_000_000).default(500),
  // Connections from one address outside allowUnauthenticatedFrom.
  maxConnectionsPerIp: z.int().min(1).max(1_000_000).default(20),
  // Connections from one address inside allowUnauthenticatedFrom: larger (an app server's pool of 50
  // connections is one client), but never every slot, so one app cannot lock the others out.
  maxConnectionsPerTrustedIp: z.int().min(1).max(1_000_000).default(100),
  // Clients outside allowUnauthenticatedFrom wait this long for the greeting, and one that talks first is
  // refused (an early-talker check, like Postfix's postscreen greet pause). Trusted clients never wait.
  greetingDelaySeconds: z.number().min(0).max(30).default(0.1),
  // Look up the client's name (reverse DNS) for the Received header, as Postfix's smtpd_peername_lookup;
  // never for a loopback client, and never longer than the timeout.
  reverseLookup: z.boolean().default(true),
  reverseLookupTimeoutSeconds: z.number().positive().max(1.5).default(1),
  // Silence this long closes the connection.
  idleTimeoutSeconds: seconds.default(60),
  // A session must complete an AUTH, MAIL, RCPT or DATA this often, however busy it keeps the line.
  progressTimeoutSeconds: seconds.default(300),
  // DATA must reach its final dot within this long, however slowly it drips.
  dataTimeoutSeconds: seconds.default(600),
  maxAuthFailures: z.int().min(1).max(100).default(3),
  authFailureDelaySeconds: z.number().min(0).max(60).default(1),
};
