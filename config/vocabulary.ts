// The words of the config file that have a fixed set of values, and the defaults of the settings: declared
// here once, read by the schema (what the file may say), the types (what the relay runs on) and the docs.
// A new TLS mode or event type is one line here.

/** How a connection is secured: TLS from the first byte, upgraded with STARTTLS, or not at all. */
export const TLS_MODES = ['implicit', 'starttls', 'none'] as const;
export type TlsMode = (typeof TLS_MODES)[number];

/** Who hands out an upstream's OAuth2 access tokens. */
export const OAUTH2_PROVIDERS = ['microsoft', 'google', 'client-credentials'] as const;
export type OAuth2Provider = (typeof OAUTH2_PROVIDERS)[number];

/** queue: on disk before the 250, delivered after; passthrough: forwarded while the client waits. */
export const DELIVERY_MODES = ['queue', 'passthrough'] as const;
export type DeliveryMode = (typeof DELIVERY_MODES)[number];

/** What became of a message, as delivery events tell the platform. */
export const DELIVERY_EVENT_TYPES = ['accepted', 'held', 'delivered', 'deferred', 'bounced', 'expired', 'deleted', 'suppressed', 'complained'] as const;
export type DeliveryEventType = (typeof DELIVERY_EVENT_TYPES)[number];

/** What a message gets when the platform's DKIM signature cannot be made. */
export const DKIM_FAILURE_POLICIES = ['send-unsigned', 'tempfail', 'reject'] as const;
export type DkimFailurePolicy = (typeof DKIM_FAILURE_POLICIES)[number];

/** What names the tenant of a message: the AUTH user, the sender's address, the sender's domain. */
export const IDENTIFIERS = ['auth', 'address', 'domain'] as const;
export type Identifier = (typeof IDENTIFIERS)[number];

/** Two identifiers naming two tenants: refuse the message, or take the AUTH user's tenant. */
export const IDENTITY_CONFLICTS = ['refuse', 'prefer-auth'] as const;
export type IdentityConflict = (typeof IDENTITY_CONFLICTS)[number];

/** What an ops token may do (README: Operations). */
export const OPS_SCOPES = ['metrics', 'send-test', 'preflight', 'trace', 'queue', 'drain'] as const;
export type OpsScope = (typeof OPS_SCOPES)[number];

/** own-senders: a tenant's AUTH user sends as that tenant's addresses and domains only. */
export const SEND_AS_POLICIES = ['own-senders', 'any-sender'] as const;
export type SendAsPolicy = (typeof SEND_AS_POLICIES)[number];

/**
 * What a suppressed recipient gets: report (accepted, skipped at delivery, a `suppressed` event: apps that
 * cannot handle a 5xx at RCPT keep working) or refuse (550 5.1.1 at RCPT).
 */
export const SUPPRESSION_ACTIONS = ['report', 'refuse'] as const;
export type SuppressionAction = (typeof SUPPRESSION_ACTIONS)[number];

/** A bare CR, LF or NUL in DATA (SMTP smuggling): refused, or made CRLF. */
export const BARE_LINE_ENDINGS = ['reject', 'normalize'] as const;
export type BareLineEndings = (typeof BARE_LINE_ENDINGS)[number];

/** The SMTP ports a tenant-entered upstream may use by default. */
export const MAIL_PORTS: readonly number[] = [25, 465, 587, 2525];

/** The port an upstream is reached on when its config names none, by TLS mode. */
export const DEFAULT_UPSTREAM_PORT: Readonly<Record<TlsMode, number>> = { implicit: 465, starttls: 587, none: 25 };

/**
 * What an upstream mailbox's provider allows, as documented: set as the upstream's limits unless its own
 * `limits` say otherwise. Microsoft 365: 30 messages a minute and 10,000 recipients in a sliding 24 hours
 * per mailbox (learn.microsoft.com, "Exchange Online limits"); Google Workspace: 2,000 messages and 10,000
 * recipients a day per user (support.google.com/a/answer/166852); SES: per account, set by hand.
 * Recipients per message: Microsoft 365 500; Google Workspace 2,000 in all but 500 outside the domain
 * (the same page), and a relay's mail is mostly outside.
 */
export const PROVIDER_PROFILES = ['microsoft365', 'google-workspace', 'ses', 'none'] as const;
export type ProviderProfile = (typeof PROVIDER_PROFILES)[number];
export const PROVIDER_LIMITS: Readonly<
  Record<ProviderProfile, { readonly messagesPerMinute?: number; readonly messagesPerDay?: number; readonly recipientsPerDay?: number; readonly recipientsPerMessage?: number }>
> = {
  microsoft365: { messagesPerMinute: 30, recipientsPerDay: 10_000, recipientsPerMessage: 500 },
  'google-workspace': { messagesPerDay: 2_000, recipientsPerDay: 10_000, recipientsPerMessage: 500 },
  ses: {},
  none: {},
};
