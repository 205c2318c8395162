// `tenant-relay preflight` (and the ops listener's /preflight): for an upstream, connect, negotiate TLS as
// configured, log in (no mail is sent), and report what an admin needs before going live: reachable, TLS
// version, certificate expiry, AUTH accepted; for an OAuth2 upstream, the token's expiry and scopes too
// (never the token). A failure is reported as a category with the relay's own words for it and the fix;
// of what the far side sent, only an SMTP reply is ever shown (a candidate a tenant typed in may point at
// any service, and the preflight must not read its banner back to them, nor tell open from closed ports
// beyond "not SMTP").
import type { TLSSocket } from 'node:tls';
import { parseUpstreamRecord } from '../../config/tenant-record.js';
import { type CertificateFacts, certificateFacts } from '../../config/certificate-names.js';
import type { ClientCertificate, Config, SmtpUpstream, Tenant, UpstreamHostPolicy } from '../../config/types.js';
import { formatUpstreamReply } from '../errors.js';
import type { Logger } from '../log.js';
import { checkUpstreamHost, MAIL_PORTS, pinnedTo, policyApplies } from './host-policy.js';
import { AccessTokens } from './oauth2/tokens.js';
import { probeOptions } from './pools.js';
import { type ClientOptions, SmtpClientConnection } from './smtp-client.js';
import { microsoftAuthRefusal } from './classify.js';
import { parseUpstreamReply } from './upstream-reply.js';

/** What went wrong, as a word a script can act on. */
export type PreflightCategory =
  | 'ok'
  | 'host-forbidden'
  | 'unresolvable'
  | 'refused'
  | 'timeout'
  | 'closed'
  | 'not-smtp'
  | 'smtp-refused'
  | 'tls-failed'
  | 'no-token'
  | 'auth-refused';

export interface PreflightReport {
  readonly upstream: string;
  readonly address: string;
  readonly tls: SmtpUpstream['tls'];
  readonly authKind: 'password' | 'oauth2' | 'none';
  readonly category: PreflightCategory;
  readonly reachable: boolean;
  readonly tlsVersion?: string;
  readonly certificateExpires?: string;
  readonly certificateDaysLeft?: number;
  /** The relay's client certificate for this upstream: its names, whether one is the tenant's, its expiry. */
  readonly clientCertificate?: CertificateFacts;
  /** An OAuth2 upstream: the access token the relay got (its expiry and scopes, not the token). */
  readonly token?: { readonly expires: string; readonly scopes: readonly string[]; readonly requested?: string };
  readonly auth: 'ok' | 'refused' | 'no token' | 'not configured' | 'not tried';
  /** The relay's words for what failed, and what to do. */
  readonly error?: string;
  /** What the upstream answered, when it was an SMTP reply. */
  readonly upstreamReply?: string;
  readonly ok: boolean;
}

export interface PreflightOptions {
  readonly heloName: string;
  readonly tokens: AccessTokens;
  /** Applied to a tenant's upstream and token endpoint, as in delivery. */
  readonly hostPolicy?: UpstreamHostPolicy;
  /** The operator's own check (the command): token endpoints' descriptions are shown too. */
  readonly operator?: boolean;
  /** The tenants that use this upstream: a client certificate should name a domain of theirs. */
  readonly tenants?: readonly Tenant[];
  readonly now?: number;
}

/** No preflight waits longer than this for any one step, whatever the upstream's timeouts say. */
export const PREFLIGHT_TIMEOUT_MS = 30_000;

export async function preflight(upstream: SmtpUpstream, options: PreflightOptions): Promise<PreflightReport> {
  const now = options.now ?? Date.now();
  const authKind = upstream.auth?.kind ?? 'none';
  const base = {
    upstream: upstream.name,
    address: `${upstream.host}:${upstream.port}`,
    tls: upstream.tls,
    authKind,
    ...(upstream.clientCertificate ? { clientCertificate: certificateFacts(upstream.clientCertificate, options.tenants ?? [], now) } : {}),
  } as const;
  const failed = (category: PreflightCategory, error: string, extra: Partial<PreflightReport> = {}): PreflightReport => ({ ...base, category, reachable: false, auth: 'not tried', error, ...extra, ok: false });
  const policy = upstream.hostPolicy ?? options.hostPolicy;
  let target = upstream;
  if (upstream.owner === 'tenant' && policy && policyApplies(policy)) {
    const checked = await checkUpstreamHost(upstream.host, policy, upstream.port);
    if (!checked.ok) return failed(/cannot resolve|has no address/.test(checked.reason) ? 'unresolvable' : 'host-forbidden', checked.reason);
    target = pinnedTo(upstream, checked.address);
  }
  const probe = probeOptions(target, options.heloName);
  const cap = (ms: number) => Math.min(ms, PREFLIGHT_TIMEOUT_MS);
  let connection: SmtpClientConnection;
  try {
    // EHLO, and STARTTLS with the second EHLO when TLS is required; the login comes below, on its own.
    connection = await SmtpClientConnection.open({ ...probe, connectTimeoutMs: cap(probe.connectTimeoutMs), socketTimeoutMs: cap(probe.socketTimeoutMs) });
  } catch (err) {
    const said = smtpReplyOf(err);
    const category = categoryOf(err as UpstreamError);
    return failed(category, advice(category, err as UpstreamError, upstream), { ...(said ? { upstreamReply: said } : {}), reachable: category === 'tls-failed' || category === 'smtp-refused' });
  }
  const socket = connection.socket as Partial<TLSSocket>;
  const protocol = socket?.getProtocol?.() ?? undefined;
  const validTo = socket?.getPeerCertificate?.()?.valid_to;
  const expires = validTo ? new Date(validTo) : undefined;
  const facts = {
    ...base,
    reachable: true,
    ...(protocol ? { tlsVersion: protocol } : {}),
    ...(expires ? { certificateExpires: expires.toISOString(), certificateDaysLeft: Math.floor((expires.getTime() - now) / 86_400_000) } : {}),
  };
  const auth = upstream.auth;
  if (!auth) {
    connection.quit();
    return { ...facts, category: 'ok', auth: 'not configured', ok: true };
  }
  let login: NonNullable<ClientOptions['auth']>;
  let token: PreflightReport['token'];
  if (auth.kind === 'password') login = { kind: 'password', user: auth.user, pass: auth.pass };
  else {
    try {
      const issued = await options.tokens.get(auth.grant, { upstream: upstream.name, ...(policy ? { hostPolicy: policy } : {}) });
      const held = options.tokens.facts(auth.grant);
      // Google's token answer names no scopes: say what was asked for instead of nothing.
      token = { expires: new Date(issued.expiresAt).toISOString(), scopes: held?.scopes ?? [], ...(auth.grant.scope ? { requested: auth.grant.scope } : {}) };
      // The token just minted, for both tries of a login a 334 challenge interrupts: preflight reports
      // what the server says of this token, it does not renew it.
      login = { kind: 'oauth2', user: auth.user, token: () => Promise.resolve(issued.accessToken) };
    } catch (err) {
      connection.quit();
      const e = err as Error & { reason?: string };
      return { ...facts, category: 'no-token', auth: 'no token', error: options.operator ? e.message : `token endpoint: ${e.reason ?? 'failed'}`, ok: false };
    }
  }
  const refused = await connection.login(login).then(
    () => undefined,
    (err: UpstreamError) => err,
  );
  connection.quit();
  if (!refused) return { ...facts, ...(token ? { token } : {}), category: 'ok', auth: 'ok', ok: true };
  const said = smtpReplyOf(refused);
  return { ...facts, ...(token ? { token } : {}), category: 'auth-refused', auth: 'refused', error: authAdvice(said), ...(said ? { upstreamReply: said } : {}), ok: false };
}

interface UpstreamError extends Error {
  code?: string;
  originalCode?: string;
  response?: string;
}

/** The far side's words, only when they are an SMTP reply. */
function smtpReplyOf(err: unknown): string | undefined {
  const reply = parseUpstreamReply((err as UpstreamError).response);
  return reply ? formatUpstreamReply(reply) : undefined;
}

function categoryOf(err: UpstreamError): PreflightCategory {
  const system = err.originalCode ?? '';
  if (err.code === 'ETLS' || TLS_CODES.test(system)) return 'tls-failed';
  if (err.code === 'EDNS' || /^(ENOTFOUND|EAI_AGAIN|EAI_NONAME)$/.test(system)) return 'unresolvable';
  if (system === 'ECONNREFUSED') return 'refused';
  if (err.code === 'ETIMEDOUT' || system === 'ETIMEDOUT') return 'timeout';
  if (err.code === 'EPROTOCOL') return parseUpstreamReply(err.response) ? 'smtp-refused' : 'not-smtp';
  if (system === 'EHOSTUNREACH' || system === 'ENETUNREACH') return 'refused';
  return 'closed';
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS|ERR_SSL|EPROTO/;

/** The relay's own words for a failure to connect, with what to do about it. */
function advice(category: PreflightCategory, err: UpstreamError, upstream: SmtpUpstream): string {
  switch (category) {
    case 'tls-failed':
      return tlsAdvice(err, upstream);
    case 'unresolvable':
      return `the name ${upstream.host} does not resolve`;
    case 'refused':
      return `nothing accepts connections on ${upstream.host}:${upstream.port}`;
    case 'timeout':
      return `no answer from ${upstream.host}:${upstream.port} in time`;
    case 'not-smtp':
      return `${upstream.host}:${upstream.port} does not answer like an SMTP server`;
    case 'smtp-refused':
      return 'the server refused the connection with an SMTP reply';
    default:
      return 'the connection closed before the server said anything';
  }
}

function tlsAdvice(err: UpstreamError, upstream: SmtpUpstream): string {
  const system = err.originalCode ?? '';
  const text = `${system} ${err.message}`;
  if (/STARTTLS/i.test(text) || (err.code === 'ETLS' && err.response)) return 'TLS failed: the server did not offer STARTTLS (use tls: implicit if it speaks TLS from the first byte, usually port 465)';
  if (/ALTNAME|Hostname\/IP does not match/i.test(text)) return `TLS failed: the certificate is not valid for ${upstream.servername ?? upstream.host} (connect by a name it is issued for, or set upstream.servername)`;
  if (/EXPIRED/i.test(text)) return "TLS failed: the server's certificate has expired";
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|self[- ]signed|unable to verify/i.test(text)) {
    return "TLS failed: the server's certificate is not signed by a CA the relay trusts (set upstream.ca to the PEM file of the CA that signed it, or have the server send its whole chain)";
  }
  if (/wrong version|EPROTO|handshake/i.test(text)) return `TLS failed: no TLS handshake with ${upstream.host}:${upstream.port} (with tls: ${upstream.tls}; the server may expect ${upstream.tls === 'implicit' ? 'STARTTLS (tls: starttls, usually port 587)' : 'TLS from the first byte (tls: implicit, usually port 465)'})`;
  return 'TLS failed';
}

/** Microsoft 365's 5.7.139 answers want different fixes (microsoftAuthRefusal in delivery/classify.ts). */
function authAdvice(said: string | undefined): string {
  switch (said === undefined ? undefined : microsoftAuthRefusal(said)) {
    case 'smtp-auth-disabled':
      return 'SMTP AUTH is disabled for the Microsoft 365 tenant or mailbox: turn it on (Set-CASMailbox -SmtpClientAuthenticationDisabled $false); OAuth2 needs it too';
    case 'basic-auth-disabled':
      return 'basic authentication is disabled for this tenant (or security defaults or a Conditional Access policy block it): configure oauth2';
    default:
      return 'the upstream refused the credentials';
  }
}

/** The host policy for upstreams a tenant admin types in, when no tenant source says otherwise. */
const TENANT_ENTERED_HOSTS: UpstreamHostPolicy = Object.freeze({ denySpecialAddresses: true, denyPrivateAddresses: true, allow: Object.freeze([]), ports: MAIL_PORTS });

/** Candidates checked at once, at most: each holds a connection out for up to PREFLIGHT_TIMEOUT_MS. */
const MAX_CONCURRENT_CANDIDATES = 4;
let candidatesRunning = 0;

/** POST /preflight on the ops listener (a relay's, or the primary's with workers). */
export function preflightEndpoint(req: { readonly method: string; readonly body: unknown }, config: Config, logger: Logger): Promise<{ status: number; body: unknown }> {
  if (req.method !== 'POST') return Promise.resolve({ status: 405, body: { error: 'POST a candidate upstream: { "upstream": { ... } }' } });
  return preflightCandidate(req.body, { heloName: config.hostname, hostPolicy: config.tenantSource?.upstreamHosts ?? TENANT_ENTERED_HOSTS, certificates: config.clientCertificates, logger });
}

/**
 * The platform's settings page asks before it saves: a candidate upstream (the keys of a tenant's
 * `upstream`, any auth kind), checked like a platform record and preflighted under the tenant-entered
 * host policy. Nothing is stored: the token, if one was minted, is dropped with its throwaway cache.
 */
export async function preflightCandidate(body: unknown, options: { heloName: string; hostPolicy: UpstreamHostPolicy; certificates: ReadonlyMap<string, ClientCertificate>; logger: Logger }): Promise<{ status: number; body: unknown }> {
  const candidate = body && typeof body === 'object' ? (body as { upstream?: unknown; name?: unknown }) : {};
  const name = typeof candidate.name === 'string' && /^[A-Za-z0-9_-]{1,63}$/.test(candidate.name) ? candidate.name : 'candidate';
  const checked = parseUpstreamRecord(candidate.upstream, name, options.hostPolicy, options.certificates);
  if (!checked.ok) return { status: 400, body: { ok: false, problems: checked.problems } };
  if (candidatesRunning >= MAX_CONCURRENT_CANDIDATES) return { status: 429, body: { ok: false, error: `${MAX_CONCURRENT_CANDIDATES} preflights are running; try again in a moment` } };
  candidatesRunning++;
  try {
    const report = await preflight(checked.upstream, { heloName: options.heloName, tokens: new AccessTokens({ logger: options.logger }), hostPolicy: options.hostPolicy });
    return { status: 200, body: report };
  } finally {
    candidatesRunning--;
  }
}
