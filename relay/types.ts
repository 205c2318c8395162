// The domain as the relay's stages pass it along. Library types stay inside the module that uses them.
import type { DeliveryMode, DkimPrivateKey, Identifier, Tenant, TenantFinder, Upstream } from '../config/types.js';
import type { SmtpReply, UpstreamReply } from './errors.js';

export type { DeliveryMode, Tenant, TenantFinder, Upstream } from '../config/types.js';
export type { UpstreamReply } from './errors.js';

export interface Envelope {
  /** '' for the null sender `<>` (bounces), which is kept as it is. */
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
}

/** Who the client authenticated as; absent for an unauthenticated client from an allowed network. */
export interface AuthIdentity {
  readonly username: string;
}

export interface TenantMatch {
  readonly tenant: Tenant;
  readonly by: Identifier;
  /** What matched: the AUTH user, the address, or the domain pattern. */
  readonly key: string;
}

/** Where a tenant's mail goes: its own upstream or the smarthost, and where it goes when that keeps failing. */
export interface Route {
  readonly upstream: Upstream;
  readonly via: 'tenant' | 'smarthost';
  /** Queue mode: after temporary failures lasting `afterMs`, deliver through `upstream` instead (never after a 5xx). */
  readonly fallback?: { readonly upstream: Upstream; readonly afterMs: number };
}

/** The tenant's identity on the wire: what the message stage changes. Empty when nothing changes. */
export interface Rewrites {
  /** A new From: the address, the display name, or both. */
  readonly from?: { readonly address?: string; readonly name?: string };
  readonly replyTo?: string;
  /** A new MAIL FROM; the null sender is never rewritten. */
  readonly envelopeSender?: string;
}

export type DkimPlan =
  | {
      readonly kind: 'sign';
      readonly selector: string;
      /** Absent: the domain of the From header the message leaves with. */
      readonly signingDomain?: string;
      readonly key: DkimPrivateKey;
      readonly keyOwner: 'tenant' | 'platform';
      /**
       * Signed only when the From the message leaves with is this tenant's own (config/ownership.ts): a
       * signature vouches for its From, and no tenant may have the relay vouch for another's. Absent
       * when d= is the platform's own signingDomain, which vouches for no tenant's From.
       */
      readonly fromOwner?: Tenant;
      /** Why it signs what it signs, for explain. */
      readonly reason: string;
    }
  | { readonly kind: 'off'; readonly reason: string };

/** What the header From of an identified tenant's message may name. */
export interface HeaderFromRule {
  readonly tenant: Tenant;
  /** inbound.checkHeaderFrom: only the tenant's own; else anything but another tenant's. */
  readonly ownOnly: boolean;
  /** Who owns an address: the config's tenants and the platform's answers known to this decision. */
  readonly tenants: TenantFinder;
}

export interface RouteDecision {
  readonly kind: 'route';
  readonly tenant?: Tenant;
  readonly route: Route;
  /** queue: on disk before 250, delivered with retries; passthrough: forwarded while the client waits. */
  readonly mode: DeliveryMode;
  readonly rewrites: Rewrites;
  readonly dkim: DkimPlan;
  /** Absent for mail of no tenant. */
  readonly headerFrom?: HeaderFromRule;
  readonly reason: string;
}

export type Decision = RouteDecision | { readonly kind: 'refused'; readonly reply: SmtpReply; readonly reason: string };

export type RecipientStatus = 'sent' | 'temp' | 'perm';

export interface RecipientOutcome {
  readonly recipient: string;
  readonly status: RecipientStatus;
  /** The reply that explains the status, in the form our client would be shown it. */
  readonly reply: SmtpReply;
  /** What the upstream said, when it said something (not for a connection that failed or a local refusal). */
  readonly upstreamReply?: UpstreamReply;
  /**
   * A temporary failure after the whole message went out (the upstream never answered the final dot):
   * it may have the message, so a retry may deliver it twice.
   */
  readonly mayHaveArrived?: boolean;
  /** Not sent: the address is suppressed for the message's tenant (suppression/). */
  readonly suppressed?: boolean;
}

export interface DeliveryResult {
  readonly upstream: string;
  readonly outcomes: readonly RecipientOutcome[];
}

/** A message in memory: one buffer, or its parts in order (message-bytes.ts). */
export type MessageBytes = Buffer | readonly Buffer[];

/** The bytes of a message to send: in memory, or a file an upstream pool can read again to resend. */
export type MessageSource = MessageBytes | { readonly path: string; /** Header lines sent before the file's bytes. */ readonly prefix?: Buffer };
