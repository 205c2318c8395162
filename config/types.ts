// The validated, frozen configuration the relay runs on. Nothing outside config/ sees raw YAML.
import type { BareLineEndings, DeliveryEventType, DeliveryMode, DkimFailurePolicy, Identifier, IdentityConflict, OpsScope, SendAsPolicy, SuppressionAction, TlsMode } from './vocabulary.js';
import type { ClientCertificate, Limits, Upstream, UpstreamHostPolicy } from './upstream-types.js';

export type { ClientCertificate, Limits, MaildirUpstream, SmtpUpstream, TokenGrant, Upstream, UpstreamAuth, UpstreamHostPolicy } from './upstream-types.js';
export type { BareLineEndings, DeliveryEventType, DeliveryMode, DkimFailurePolicy, Identifier, IdentityConflict, OAuth2Provider, OpsScope, SendAsPolicy, TlsMode } from './vocabulary.js';


export interface TenantIdentity {
  /** Addresses are stored with their domain in ASCII (punycode) form. */
  readonly from?: string;
  readonly displayName?: string;
  readonly replyTo?: string;
  /** MAIL FROM becomes `from` (never for the null sender): many tenant servers refuse senders they do not own. */
  readonly rewriteEnvelopeSender: boolean;
}

export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** A private key checked at load: it parses, and it is RSA (at least 1024 bits) or ed25519. */
export interface DkimPrivateKey {
  readonly pem: string;
  readonly algorithm: DkimAlgorithm;
}

export interface DkimSettings {
  readonly selector?: string;
  /** Absent: the domain of the From header the message leaves with (aligned for DMARC). */
  readonly signingDomain?: string;
  readonly privateKey?: DkimPrivateKey;
}

export interface MessagePolicy {
  /** When From was rewritten and neither the tenant nor the message set a Reply-To, reply to the original author. */
  readonly replyToOriginalFrom: boolean;
  /** The tenant's replyTo replaces a Reply-To the message already has. */
  readonly overrideReplyTo: boolean;
  /** Keep the original From in this header when From is rewritten. */
  readonly originalFromHeader?: string;
  /** Name the tenant and upstream in this header, for checking routing from received mail. */
  readonly traceHeader?: string;
  /** Headers used only for routing inside the platform, removed before forwarding. */
  readonly removeHeaders: readonly string[];
}


export interface Tenant {
  readonly id: string;
  readonly match: {
    readonly authUsers: readonly string[];
    readonly addresses: readonly string[];
    /** "example.com" matches that domain only; "*.example.com" matches every subdomain of it. */
    readonly domains: readonly string[];
  };
  /** Absent when the tenant sends through the global smarthost. */
  readonly upstream?: Upstream;
  readonly identity: TenantIdentity;
  readonly dkim: DkimSettings & { readonly disablePlatformDkim: boolean };
  /** Sending rates: pass-through refuses past them (451 4.7.1), the queue spreads deliveries out. */
  readonly limits?: Limits;
  readonly delivery: {
    /** Absent: the global mode. */
    readonly mode?: DeliveryMode;
    readonly fallbackToSmarthostAfterMs?: number;
    /** Its own upstream's mail leaves with the relay's return path too (bounces by mail). */
    readonly verp: boolean;
    /** Its share of the spool (absent: delivery.spool.perTenant). */
    readonly spool?: Partial<SpoolQuota>;
  };
  /** The tenant's own webhook, told of its messages only (besides the platform's). */
  readonly webhook?: WebhookSettings;
  /** Its own suppression settings, where they differ from the global ones. */
  readonly suppression?: Partial<SuppressionSettings>;
}



/** A platform endpoint that receives delivery events, signed the Standard Webhooks way. */
export interface WebhookSettings {
  readonly url: string;
  /** The signing key as configured: whsec_ and base64. */
  readonly secret: string;
  /** PEM text of a private CA for the endpoint. */
  readonly ca?: string;
  readonly types: readonly DeliveryEventType[];
  readonly timeoutMs: number;
  readonly maxBatchEvents: number;
  readonly maxBatchBytes: number;
  readonly maxBacklogEvents: number;
}

/** Bounces by mail: the return path mail through the smarthost leaves with, and the listener for it. */
export interface BounceSettings {
  readonly domain: string;
  readonly localPart: string;
  readonly signingKey: string;
  readonly listen: { readonly host: string; readonly port: number };
}

/** What a tenant's suppressed recipients get (global settings, a tenant's own key by key). */
export interface SuppressionSettings {
  readonly enabled: boolean;
  readonly expiryMs: number;
  readonly action: SuppressionAction;
}

export interface TraceSettings {
  readonly enabled: boolean;
  readonly retentionMs: number;
  readonly maxBytes: number;
}

export interface RetryPolicy {
  readonly minMs: number;
  readonly maxMs: number;
  /** 0..1: each delay is moved by up to this fraction, so retries of many messages spread out. */
  readonly jitter: number;
  readonly maxLifetimeMs: number;
}

/** How much waiting mail one tenant may keep in the spool. */
export interface SpoolQuota {
  readonly maxMessages: number;
  readonly maxBytes: number;
}

export interface DeliveryPolicy {
  readonly mode: DeliveryMode;
  readonly spool: { readonly path: string; readonly fsync: boolean; readonly minFreeBytes: number; readonly perTenant: SpoolQuota };
  readonly retry: RetryPolicy;
  readonly maxConcurrentDeliveries: number;
  readonly scanMs: number;
}

export interface InboundUser {
  readonly username: string;
  readonly passwordHash: string;
}

export interface Listener {
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
  /** Absolute paths of the PEM certificate chain and key; present when tls is not none. */
  readonly cert?: string;
  readonly key?: string;
}

export interface InboundPolicy {
  readonly allowUnauthenticatedFrom: readonly string[];
  readonly users: ReadonlyMap<string, InboundUser>;
  readonly tenantUsersSendAs: SendAsPolicy;
  readonly checkHeaderFrom: boolean;
  readonly bareLineEndings: BareLineEndings;
  readonly maxRecipients: number;
  readonly maxConnections: number;
  /** Connections from one address outside allowUnauthenticatedFrom. */
  readonly maxConnectionsPerIp: number;
  /** Connections from one address inside allowUnauthenticatedFrom. */
  readonly maxConnectionsPerTrustedIp: number;
  /** The wait before the greeting for clients outside allowUnauthenticatedFrom (an early-talker check). */
  readonly greetingDelayMs: number;
  readonly reverseLookup: boolean;
  readonly reverseLookupTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly progressTimeoutMs: number;
  readonly dataTimeoutMs: number;
  readonly maxAuthFailures: number;
  readonly authFailureDelayMs: number;
}


export interface DomainMatch {
  readonly tenant: Tenant;
  /** The configured entry that matched, e.g. "example.com" or "*.example.com". */
  readonly pattern: string;
}

/** Where tenants are found by what identifies a message: the config's own, or those with the platform's answers. */
export interface TenantFinder {
  byAuthUser(username: string): Tenant | undefined;
  byAddress(address: string): Tenant | undefined;
  /** The exact domain first, then the nearest parent domain whose subdomains are claimed. */
  byDomain(domain: string): DomainMatch | undefined;
}

export interface TenantIndex extends TenantFinder {
  byId(id: string): Tenant | undefined;
}


export interface TenantRequestBudget {
  readonly perSecond: number;
  readonly burst: number;
}

export interface OpsToken {
  readonly token: string;
  readonly scopes: readonly OpsScope[];
  /** The tenant whose mail alone it sees; absent: every tenant's. */
  readonly tenant?: string;
  /** Who it is in the log (`by` of the console's actions). */
  readonly name: string;
}

export interface Config {
  /** The file this snapshot was read from, or "<built-in>". */
  readonly source: string;
  /** The files its `${file:}` secrets were read from: watched, so a rotated secret is in use without a reload. */
  readonly secretFiles: readonly string[];
  readonly hostname: string;
  readonly ops: {
    readonly enabled: boolean;
    readonly host: string;
    readonly port: number;
    readonly shutdownGraceMs: number;
    /** SIGTERM with mail queued: deliver for up to this long first (0: leave it on disk). */
    readonly drainMs: number;
    /** Bearer tokens and what each may do (ops.token is one with every scope). */
    readonly tokens: readonly OpsToken[];
    /** Scopes that need no token: metrics on a loopback listener with no token, or ops.openMetrics. */
    readonly openScopes: readonly OpsScope[];
    /** TLS for the ops listener: absolute paths of the PEM certificate chain and key. */
    readonly tls?: { readonly cert: string; readonly key: string };
    /** Tenants with label values of their own in /metrics: the first `max` seen, and `always`. */
    readonly tenantLabels: { readonly max: number; readonly always: readonly string[] };
    /** What a tenant's token may ask of the ops listener: so many requests a second, bursts up to `burst`. */
    readonly tenantRequests: TenantRequestBudget;
  };
  /** Processes sharing the listeners, each with its own spool (1: this process alone). */
  readonly workers: number;
  readonly limits: LimitStoreSettings;
  readonly listen: readonly Listener[];
  readonly maxMessageSizeBytes: number;
  readonly inbound: InboundPolicy;
  readonly identification: {
    readonly order: readonly Identifier[];
    readonly conflict: IdentityConflict;
  };
  readonly smarthost: Upstream;
  /** Client certificates the operator installed, by name (what platform records refer to). */
  readonly clientCertificates: ReadonlyMap<string, ClientCertificate>;
  readonly upstreamHosts: UpstreamHostPolicy;
  readonly delivery: DeliveryPolicy;
  readonly message: MessagePolicy;
  /** The platform's DKIM key and what to do with a message that cannot be signed. */
  readonly dkim: DkimSettings & { readonly onFailure: DkimFailurePolicy };
  readonly tenants: readonly Tenant[];
  /** The tenants above, indexed by what identifies them. */
  readonly directory: TenantIndex;
  /** The tenant files and directories the snapshot read (absolute): watched for changes like the config file. */
  readonly tenantFiles: readonly string[];
  readonly tenantSource?: TenantSourceSettings;
  /** The platform's webhook for delivery events of every tenant; absent: none are sent. */
  readonly webhook?: WebhookSettings;
  readonly trace: TraceSettings;
  readonly suppression: SuppressionSettings;
  readonly bounces?: BounceSettings;
  readonly providerEvents: {
    readonly mailgun?: { readonly signingKey: string };
    readonly sendgrid?: { readonly publicKey: string };
    readonly postmark?: { readonly username: string; readonly password: string; readonly signingKey: string; readonly smtpHosts: readonly string[] };
    readonly ses?: { readonly topicArns: readonly string[]; readonly certificateHosts: readonly string[]; readonly ca?: string };
  };
}

/** Where limits are counted: Redis shared by every process and replica, or (absent) each process's memory. */
export interface LimitStoreSettings {
  readonly redis?: RedisSettings;
  /** While Redis cannot be reached: the share of each budget a process allows (absent: 1 / processes seen). */
  readonly localShare?: number;
}

export interface RedisSettings {
  readonly url: string;
  readonly keyPrefix: string;
  /** Signs what relays share through Redis, and names shared mailbox budgets (config/credentials.ts). */
  readonly signingKey: string;
  /** PEM text of a private CA for rediss://. */
  readonly ca?: string;
  readonly timeoutMs: number;
}

/** The platform's HTTP endpoint for tenants the YAML does not list, and how its answers are cached. */
export interface TenantSourceSettings {
  /** Base URL, no trailing slash: lookups go to `${url}/tenants/lookup`. */
  readonly url: string;
  readonly token?: string;
  /** PEM text of a private CA to trust for the platform. */
  readonly ca?: string;
  readonly timeoutMs: number;
  readonly cacheMs: number;
  readonly staleMs: number;
  readonly notFoundMs: number;
  readonly maxEntries: number;
  /** Lookups that reach the platform, at most, per SMTP session and per client address a minute. */
  readonly maxLookupsPerSession: number;
  readonly maxLookupsPerClientPerMinute: number;
  /** Applied to the upstreams of tenants from this source, whatever the global `upstreamHosts` says. */
  readonly upstreamHosts: UpstreamHostPolicy;
  /** The Redis channel on which the platform names tenants it changed. */
  readonly invalidationChannel?: string;
}
