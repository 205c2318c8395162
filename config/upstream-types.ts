// The upstreams of the validated config: a tenant's own SMTP server or the platform's smarthost (its TLS,
// its login, its mailbox's limits, the host policy it is held to), or a maildir for development.
import type { TlsMode } from './vocabulary.js';

export interface UpstreamHostPolicy {
  readonly denySpecialAddresses: boolean;
  readonly denyPrivateAddresses: boolean;
  readonly allow: readonly string[];
  /** The ports such an upstream may use; empty: any. */
  readonly ports: readonly number[];
}

/** What may be sent in a time: a tenant's, or an upstream mailbox's shared by every tenant using it. */
export interface Limits {
  readonly messagesPerMinute?: number;
  readonly messagesPerDay?: number;
  /** Recipients in a sliding 24 hours (how Microsoft 365 counts its daily limit). */
  readonly recipientsPerDay?: number;
}

/**
 * How the relay logs in to an upstream. `id` tells this credential from any other without showing it
 * (config/credentials.ts): connection pools and shared mailbox budgets key on it.
 */
export type UpstreamAuth =
  | { readonly kind: 'password'; readonly user: string; readonly pass: string; readonly id: string }
  /** XOAUTH2 as `user` (the mailbox), with an access token from `grant`. */
  | { readonly kind: 'oauth2'; readonly user: string; readonly grant: TokenGrant; readonly id: string };

/** Where and how the relay gets an access token, unattended. */
export type TokenGrant = {
  readonly tokenUrl: string;
  /** The tenant's settings named the endpoint (not a provider's default): the upstream host policy applies to it. */
  readonly tokenUrlFromTenant: boolean;
  readonly scope?: string;
  /**
   * What a token is cached by: everything that makes the grant (provider, endpoint, Entra tenant, client,
   * scope, mailbox), an HMAC of its secret material, and the tenant that owns it. No secret in it.
   */
  readonly cacheKey: string;
  /** PEM text of a private CA for the endpoint (tests, private identity providers). */
  readonly ca?: string;
} & (
  | {
      readonly provider: 'microsoft';
      readonly clientId: string;
      readonly credential: { readonly kind: 'secret'; readonly secret: string } | { readonly kind: 'certificate'; readonly thumbprint: string; readonly privateKey: string };
    }
  /** A service-account JWT grant; `subject` is the mailbox it acts as (domain-wide delegation). */
  | { readonly provider: 'google'; readonly serviceAccount: string; readonly privateKey: string; readonly subject: string }
  | { readonly provider: 'client-credentials'; readonly clientId: string; readonly clientSecret: string }
);

export interface SmtpUpstream {
  readonly kind: 'smtp';
  /** A tenant's own server (subject to the upstream host policy), or the platform's smarthost. */
  readonly owner: 'tenant' | 'platform';
  /** The tenant id, or "smarthost" for the global one: used in logs and folder names. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
  /** Presented at TLS, for an upstream that knows the relay by certificate (an Exchange Online connector). */
  readonly clientCertificate?: ClientCertificate;
  readonly auth?: UpstreamAuth;
  /** The mailbox's own limits (what the upstream allows it), shared by every tenant sending through it. */
  readonly limits?: Limits;
  /** Recipients in one transaction with this server: a message to more is sent in several. */
  readonly recipientsPerMessage?: number;
  /** A new account warming up: messages a day from `sinceMs`, doubled every `doubleEveryMs`. */
  readonly ramp?: { readonly messagesPerDay: number; readonly sinceMs: number; readonly doubleEveryMs: number };
  /** PEM text of a private CA to trust for this upstream, in place of the system store. */
  readonly ca?: string;
  readonly servername?: string;
  /** false: DATA even when the server offers CHUNKING (absent: BDAT when offered). */
  readonly chunking?: false;
  readonly allowInsecureAuth: boolean;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxConnections: number;
  /** The host policy this upstream is held to; absent: the config's `upstreamHosts` (tenants' upstreams only). */
  readonly hostPolicy?: UpstreamHostPolicy;
}

/** Local delivery into a maildir, so a development relay works with no mail server at all. */
export interface MaildirUpstream {
  readonly kind: 'maildir';
  readonly name: string;
  readonly path: string;
}

export type Upstream = SmtpUpstream | MaildirUpstream;

/** A client certificate and its key (PEM), checked at load to belong together. */
export interface ClientCertificate {
  /** Its name under clientCertificates, or its file: what logs, metrics and preflight call it. */
  readonly label: string;
  readonly cert: string;
  readonly key: string;
  /** The files it was read from: watched, so a renewed certificate is used without a restart. */
  readonly files: readonly string[];
  /** An installed certificate: the tenants that may present it ('*': any); absent, those owning one of its names. */
  readonly tenants?: readonly string[];
}
