// `tenant-relay preflight` (and the ops listener's /preflight): for an upstream, connect, negotiate TLS as
// configured, log in (no mail is sent), and report what an admin needs before going live: reachable, TLS
// version, certificate expiry, AUTH accepted; for an OAuth2 upstream, the token's expiry and scopes too
// (never the token).
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import XOAuth2 from 'nodemailer/lib/xoauth2';
import { parseUpstreamRecord } from '../../config/tenant-record.js';
import type { Config, SmtpUpstream, UpstreamHostPolicy } from '../../config/types.js';
import type { Logger } from '../ops/log.js';
import { checkUpstreamHost, pinnedTo } from './host-policy.js';
import { tlsSocketOf } from './nodemailer-seams.js';
import { AccessTokens } from './oauth2/tokens.js';
import { transportOptions } from './pools.js';

export interface PreflightReport {
  readonly upstream: string;
  readonly address: string;
  readonly tls: SmtpUpstream['tls'];
  readonly authKind: 'password' | 'oauth2' | 'none';
  readonly reachable: boolean;
  readonly tlsVersion?: string;
  readonly certificateExpires?: string;
  readonly certificateDaysLeft?: number;
  /** An OAuth2 upstream: the access token the relay got (its expiry and scopes, not the token). */
  readonly token?: { readonly expires: string; readonly scopes: readonly string[] };
  readonly auth: 'ok' | 'refused' | 'no token' | 'not configured' | 'not tried';
  readonly error?: string;
  readonly ok: boolean;
}

export interface PreflightOptions {
  readonly heloName: string;
  readonly tokens: AccessTokens;
  /** Applied to a tenant's upstream and token endpoint, as in delivery. */
  readonly hostPolicy?: UpstreamHostPolicy;
  readonly now?: number;
}

export async function preflight(upstream: SmtpUpstream, options: PreflightOptions): Promise<PreflightReport> {
  const now = options.now ?? Date.now();
  const authKind = upstream.auth?.kind ?? 'none';
  const base = { upstream: upstream.name, address: `${upstream.host}:${upstream.port}`, tls: upstream.tls, authKind } as const;
  const policy = upstream.hostPolicy ?? options.hostPolicy;
  let target = upstream;
  if (upstream.owner === 'tenant' && policy && (policy.denySpecialAddresses || policy.denyPrivateAddresses)) {
    const checked = await checkUpstreamHost(upstream.host, policy);
    if (!checked.ok) return { ...base, reachable: false, auth: 'not tried', error: checked.reason, ok: false };
    target = pinnedTo(upstream, checked.address);
  }
  const { pool: _pool, maxConnections: _max, maxMessages: _msgs, auth: _auth, ...connectionOptions } = transportOptions(target, options.heloName);
  const connection = new SMTPConnection(connectionOptions);
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.connect(() => resolve());
    });
  } catch (err) {
    connection.close();
    return { ...base, reachable: false, auth: 'not tried', error: (err as Error).message, ok: false };
  }
  const socket = tlsSocketOf(connection);
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
    return { ...facts, auth: 'not configured', ok: true };
  }
  let login: Parameters<SMTPConnection['login']>[0];
  let token: PreflightReport['token'];
  if (auth.kind === 'password') login = { user: auth.user, pass: auth.pass };
  else {
    try {
      const issued = await options.tokens.get(auth.grant, { upstream: upstream.name, ...(policy ? { hostPolicy: policy } : {}) });
      const held = options.tokens.facts(auth.grant);
      token = { expires: new Date(issued.expiresAt).toISOString(), scopes: held?.scopes ?? [] };
      login = { type: 'OAuth2', user: auth.user, method: 'XOAUTH2', oauth2: new XOAuth2({ user: auth.user, accessToken: issued.accessToken, expires: issued.expiresAt }) } as Parameters<SMTPConnection['login']>[0];
    } catch (err) {
      connection.quit();
      return { ...facts, auth: 'no token', error: (err as Error).message, ok: false };
    }
  }
  const error = await new Promise<string | undefined>((resolve) => {
    connection.login(login, (err) => resolve(err ? err.message : undefined));
  });
  connection.quit();
  const explained = error && /\b5\.7\.(139|30)\b/.test(error) ? `basic authentication is disabled for this tenant: configure oauth2 (${error})` : error;
  return { ...facts, ...(token ? { token } : {}), auth: error ? 'refused' : 'ok', ...(explained ? { error: explained } : {}), ok: !error };
}

/** The host policy for upstreams a tenant admin types in, when no tenant source says otherwise. */
const TENANT_ENTERED_HOSTS: UpstreamHostPolicy = Object.freeze({ denySpecialAddresses: true, denyPrivateAddresses: true, allow: Object.freeze([]) });

/** POST /preflight on the ops listener (a relay's, or the primary's with workers). */
export function preflightEndpoint(req: { readonly method: string; readonly body: unknown }, config: Config, logger: Logger): Promise<{ status: number; body: unknown }> {
  if (req.method !== 'POST') return Promise.resolve({ status: 405, body: { error: 'POST a candidate upstream: { "upstream": { ... } }' } });
  return preflightCandidate(req.body, { heloName: config.hostname, hostPolicy: config.tenantSource?.upstreamHosts ?? TENANT_ENTERED_HOSTS, logger });
}

/**
 * The platform's settings page asks before it saves: a candidate upstream (the keys of a tenant's
 * `upstream`, any auth kind), checked like a platform record and preflighted under the tenant-entered
 * host policy. Nothing is stored: the token, if one was minted, is dropped with its throwaway cache.
 */
export async function preflightCandidate(body: unknown, options: { heloName: string; hostPolicy: UpstreamHostPolicy; logger: Logger }): Promise<{ status: number; body: unknown }> {
  const candidate = body && typeof body === 'object' ? (body as { upstream?: unknown; name?: unknown }) : {};
  const name = typeof candidate.name === 'string' && /^[A-Za-z0-9_-]{1,63}$/.test(candidate.name) ? candidate.name : 'candidate';
  const checked = parseUpstreamRecord(candidate.upstream, name, options.hostPolicy);
  if (!checked.ok) return { status: 400, body: { ok: false, problems: checked.problems } };
  const report = await preflight(checked.upstream, { heloName: options.heloName, tokens: new AccessTokens({ logger: options.logger }), hostPolicy: options.hostPolicy });
  return { status: 200, body: report };
}
