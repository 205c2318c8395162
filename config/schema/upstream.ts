// An upstream: the tenant's own SMTP server (or the platform's smarthost), how the relay logs in to it,
// what its mailbox may send; and the policy for the hosts such an upstream may name.
import { z } from 'zod';
import { MAIL_PORTS, PROVIDER_PROFILES, TLS_MODES } from '../vocabulary.js';
import { address, certificateName, hostname, pemFile, port, seconds, tokenUrl } from './fields.js';

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
export const upstreamAuth = z.discriminatedUnion('kind', [passwordAuth, z.discriminatedUnion('provider', [microsoftAuth, googleAuth, clientCredentialsAuth])]);

// What the upstream's mailbox may send, shared by every tenant that sends through it (Microsoft 365:
// 30 messages a minute, 10,000 recipients in a sliding 24 hours).
const mailboxLimits = z.strictObject({
  messagesPerMinute: z.number().positive().optional(),
  messagesPerDay: z.int().positive().optional(),
  recipientsPerDay: z.int().positive().optional(),
  // Recipients in one transaction: more are sent as several (Microsoft 365 refuses past 500).
  recipientsPerMessage: z.int().min(1).max(100_000).optional(),
});

export const smtpUpstream = z.strictObject({
  kind: z.literal('smtp'),
  host: hostname,
  port: port.optional(),
  // The TLS mode, or the mode with a client certificate to present (an Exchange Online inbound connector
  // that authenticates the relay by certificate): PEM files, or the name of one under clientCertificates.
  tls: z.union(
    [
      z.enum(TLS_MODES),
      z.strictObject({
        mode: z.enum(TLS_MODES),
        clientCertificate: pemFile.optional(),
        clientKey: pemFile.optional(),
        clientCertificateName: certificateName.optional(),
      }),
    ],
    { error: 'Invalid option: expected one of "implicit"|"starttls"|"none", or { mode, clientCertificate, clientKey } (or clientCertificateName)' },
  ),
  auth: upstreamAuth.optional(),
  // The same as auth: { kind: password, username, password }.
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  // The provider's documented limits for one mailbox, as `limits` (which override them): microsoft365,
  // google-workspace, ses or none.
  provider: z.enum(PROVIDER_PROFILES).optional(),
  // A new account warms up: this many messages a day from `since`, doubled every `doubleEveryDays`,
  // until it passes limits.messagesPerDay (or, with none, for as long as it doubles).
  ramp: z
    .strictObject({
      messagesPerDay: z.int().min(1).max(10_000_000),
      since: z.iso.date('must be a date like 2026-12-01'),
      doubleEveryDays: z.number().positive().max(365).default(1),
    })
    .optional(),
  limits: mailboxLimits.optional(),
  ca: z.string().min(1).optional(),
  servername: hostname.optional(),
  // BDAT (RFC 3030) when the server offers CHUNKING; false keeps it on DATA (a server whose BDAT is broken).
  chunking: z.boolean().default(true),
  allowInsecureAuth: z.boolean().default(false),
  timeoutSeconds: seconds.default(60),
  connectTimeoutSeconds: seconds.default(15),
  maxConnections: z.int().min(1).max(100).default(5),
});

export const maildirUpstream = z.strictObject({
  kind: z.literal('maildir'),
  path: z.string().min(1).optional(),
});

// `kind` may be left out for the common case, an SMTP server.
export const upstreamSchema = z.preprocess(
  (v) => (v && typeof v === 'object' && !Array.isArray(v) && !('kind' in v) ? { kind: 'smtp', ...v } : v),
  z.discriminatedUnion('kind', [smtpUpstream, maildirUpstream]),
);

export const hostPolicy = {
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
/** The policy for upstreams a tenant's side chose: internal addresses refused, mail ports only. */
export const tenantEnteredHosts = z
  .strictObject({
    denySpecialAddresses: hostPolicy.denySpecialAddresses.default(true),
    denyPrivateAddresses: hostPolicy.denyPrivateAddresses.default(true),
    allow: hostPolicy.allow,
    ports: hostPolicy.ports.default([...MAIL_PORTS]),
  })
  .prefault({});

/** The TLS mode of an upstream, whichever way its `tls` was written. */
export function tlsModeOf(u: { readonly tls: z.output<typeof smtpUpstream>['tls'] }): (typeof TLS_MODES)[number] {
  return typeof u.tls === 'string' ? u.tls : u.tls.mode;
}
