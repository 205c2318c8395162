// The validated, frozen configuration the relay runs on. Nothing outside config/ sees raw YAML.
import type { TenantDirectory } from './directory.js';

export type TlsMode = 'implicit' | 'starttls' | 'none';

export interface SmtpUpstream {
  readonly kind: 'smtp';
  /** The tenant id, or "smarthost" for the global one: used in logs and folder names. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly tls: TlsMode;
  readonly auth?: { readonly user: string; readonly pass: string };
  /** PEM text of a private CA to trust for this upstream, in place of the system store. */
  readonly ca?: string;
  readonly servername?: string;
  readonly allowInsecureAuth: boolean;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly maxConnections: number;
}

/** Local delivery into a maildir, so a development relay works with no mail server at all. */
export interface MaildirUpstream {
  readonly kind: 'maildir';
  readonly name: string;
  readonly path: string;
}

export type Upstream = SmtpUpstream | MaildirUpstream;

export interface TenantIdentity {
  readonly from?: string;
  readonly displayName?: string;
  readonly replyTo?: string;
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
  readonly dkim: { readonly selector?: string; readonly disablePlatformDkim: boolean };
}

export interface InboundUser {
  readonly username: string;
  readonly passwordHash: string;
}

export interface Listener {
  readonly host: string;
  readonly port: number;
}

export type Identifier = 'auth' | 'address' | 'domain';

export interface Config {
  /** The file this snapshot was read from, or "<built-in>". */
  readonly source: string;
  readonly hostname: string;
  readonly listen: readonly Listener[];
  readonly maxMessageSizeBytes: number;
  readonly inbound: {
    readonly allowUnauthenticatedFrom: readonly string[];
    readonly users: ReadonlyMap<string, InboundUser>;
  };
  readonly identification: {
    readonly order: readonly Identifier[];
    readonly conflict: 'refuse' | 'prefer-auth';
  };
  readonly smarthost: Upstream;
  readonly tenants: readonly Tenant[];
  readonly directory: TenantDirectory;
}
