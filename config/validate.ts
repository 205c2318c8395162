// Rules that span more than one key: the schema checks each value, these check the file as a whole.
import { asciiDomain, normalizeAddress } from './directory.js';
import { isHttpsOrLoopback, parseCidr } from './networks.js';
import { ownsDomain } from './ownership.js';
import type { RawConfig, RawTenant, RawUpstream } from './schema.js';
import { tlsModeOf } from './schema/upstream.js';
import type { UpstreamHostPolicy } from './types.js';
import { DEFAULT_UPSTREAM_PORT } from './vocabulary.js';

export interface PathIssue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** `firstFileTenant`: the index of the first tenant that came from a tenant file (the rest follow it). */
export function crossCheck(raw: RawConfig, firstFileTenant = raw.tenants.length): PathIssue[] {
  const issues: PathIssue[] = [];
  const claim = claimTracker(issues);

  raw.inbound.allowUnauthenticatedFrom.forEach((cidr, i) => {
    if (!parseCidr(cidr)) issues.push({ path: ['inbound', 'allowUnauthenticatedFrom', i], message: 'must be an address or CIDR range like 10.0.0.0/8' });
  });
  raw.upstreamHosts.allow.forEach((cidr, i) => {
    if (!parseCidr(cidr)) issues.push({ path: ['upstreamHosts', 'allow', i], message: 'must be an address or CIDR range like 10.0.0.0/8' });
  });
  raw.tenantFileUpstreamHosts.allow.forEach((cidr, i) => {
    if (!parseCidr(cidr)) issues.push({ path: ['tenantFileUpstreamHosts', 'allow', i], message: 'must be an address or CIDR range like 10.0.0.0/8' });
  });
  raw.tenantSource?.upstreamHosts.allow.forEach((cidr, i) => {
    if (!parseCidr(cidr)) issues.push({ path: ['tenantSource', 'upstreamHosts', 'allow', i], message: 'must be an address or CIDR range like 10.0.0.0/8' });
  });
  const users = new Set<string>();
  raw.inbound.users.forEach((u, i) => {
    if (users.has(u.username)) issues.push({ path: ['inbound', 'users', i, 'username'], message: `user "${u.username}" is declared twice` });
    users.add(u.username);
  });
  const listeners = new Set<string>();
  raw.listen.forEach((l, i) => {
    const key = `${l.host}:${l.port}`;
    // Port 0 is "any free port": two of those never collide.
    if (l.port !== 0 && listeners.has(key)) issues.push({ path: ['listen', i], message: `${key} is listed twice` });
    listeners.add(key);
    if (l.tls !== 'none' && (l.cert === undefined || l.key === undefined)) {
      issues.push({ path: ['listen', i, l.cert === undefined ? 'cert' : 'key'], message: `is required with tls: ${l.tls}` });
    }
  });
  checkOps(raw.ops, issues);
  if (raw.dkim.privateKey !== undefined && raw.dkim.selector === undefined) issues.push({ path: ['dkim', 'selector'], message: 'is required with privateKey' });
  if (raw.delivery.retry.maxSeconds < raw.delivery.retry.minSeconds) issues.push({ path: ['delivery', 'retry', 'maxSeconds'], message: 'must not be less than minSeconds' });
  if (raw.tenantSource) {
    // The token and tenants' upstream passwords cross this connection: cleartext only on this machine.
    if (!isHttpsOrLoopback(raw.tenantSource.url)) issues.push({ path: ['tenantSource', 'url'], message: 'must be https:// (plain http only to a loopback address: tenant credentials travel over it)' });
    if (raw.tenantSource.invalidationChannel !== undefined && !raw.limits.store?.redis) {
      issues.push({ path: ['tenantSource', 'invalidationChannel'], message: 'needs limits.store.redis, the Redis it is published on' });
    }
  }
  if (raw.events.webhook) checkWebhook(raw.events.webhook, ['events', 'webhook'], issues);

  checkUpstream(raw.smarthost, ['smarthost'], issues);
  const installed = (name: string) => Object.hasOwn(raw.clientCertificates, name);
  checkCertificateName(raw.smarthost, ['smarthost'], installed, issues);
  const ids = new Set<string>();
  // Paths are built only for a problem: 10,000 tenants make some 50,000 claims, nearly all of them fine.
  raw.tenants.forEach((t, i) => {
    const at = (...rest: (string | number)[]) => ['tenants', i, ...rest];
    if (ids.has(t.id)) issues.push({ path: at('id'), message: `tenant id "${t.id}" is used twice` });
    ids.add(t.id);
    t.match.authUsers.forEach((u, j) => {
      if (!users.has(u)) issues.push({ path: at('match', 'authUsers', j), message: `user "${u}" is not declared under inbound.users` });
      claim('AUTH user', u, t.id, () => at('match', 'authUsers', j));
    });
    t.match.addresses.forEach((a, j) => {
      claim('address', normalizeAddress(a), t.id, () => at('match', 'addresses', j));
    });
    t.match.domains.forEach((d, j) => {
      claim('domain', d.startsWith('*.') ? `*.${asciiDomain(d.slice(2))}` : asciiDomain(d), t.id, () => at('match', 'domains', j));
    });
    if (t.upstream) {
      checkUpstream(t.upstream, at('upstream'), issues);
      checkCertificateName(t.upstream, at('upstream'), installed, issues);
    }
    checkTenant(t, ['tenants', i], issues, { platformKey: raw.dkim.privateKey !== undefined, ...(i >= firstFileTenant ? { hostPolicy: raw.tenantFileUpstreamHosts } : {}) });
  });
  // A tenant's From is what its mail is signed and seen as: never an address another tenant owns.
  raw.tenants.forEach((t, i) => {
    const from = t.identity.from;
    if (from === undefined) return;
    const owner = claim.ownerOf(normalizeAddress(from));
    if (owner !== undefined && owner !== t.id) issues.push({ path: ['tenants', i, 'identity', 'from'], message: `"${from}" is an address of tenant "${owner}"` });
  });
  return issues;
}

function claimTracker(issues: PathIssue[]) {
  // One map per kind of claim: no key string built per claim.
  const owners = new Map<string, Map<string, string>>();
  const track = (what: string, key: string, tenant: string, path: () => (string | number)[]) => {
    let ofKind = owners.get(what);
    if (!ofKind) owners.set(what, (ofKind = new Map()));
    const owner = ofKind.get(key);
    if (owner !== undefined) {
      const who = owner === tenant ? 'this tenant already' : `tenant "${owner}"`;
      issues.push({ path: path(), message: `${what} "${key}" is already claimed by ${who}` });
    } else ofKind.set(key, tenant);
  };
  /** Who claims an address (normalized): the address itself, its domain, or the nearest `*.` parent. */
  const ownerOf = (address: string): string | undefined => {
    const domain = address.slice(address.lastIndexOf('@') + 1);
    const byAddress = owners.get('address')?.get(address);
    if (byAddress !== undefined) return byAddress;
    const domains = owners.get('domain');
    const exact = domains?.get(domain);
    if (exact !== undefined) return exact;
    for (let dot = domain.indexOf('.'); dot !== -1; dot = domain.indexOf('.', dot + 1)) {
      const parent = domains?.get(`*.${domain.slice(dot + 1)}`);
      if (parent !== undefined) return parent;
    }
    return undefined;
  };
  return Object.assign(track, { ownerOf });
}

export function checkUpstream(u: RawUpstream, at: (string | number)[], issues: PathIssue[]): void {
  if (u.kind !== 'smtp') return;
  if (typeof u.tls === 'object') {
    const { clientCertificate, clientKey, clientCertificateName } = u.tls;
    const files = clientCertificate !== undefined || clientKey !== undefined;
    if (files && (clientCertificate === undefined || clientKey === undefined)) issues.push({ path: [...at, 'tls', clientCertificate === undefined ? 'clientCertificate' : 'clientKey'], message: 'clientCertificate and clientKey go together' });
    if (files && clientCertificateName !== undefined) issues.push({ path: [...at, 'tls', 'clientCertificateName'], message: 'use clientCertificateName, or clientCertificate and clientKey, not both' });
    if ((files || clientCertificateName !== undefined) && u.tls.mode === 'none') issues.push({ path: [...at, 'tls', 'mode'], message: 'a client certificate is presented in TLS: use starttls or implicit' });
  }
  const a = u.auth;
  if (a && (u.username !== undefined || u.password !== undefined)) {
    issues.push({ path: [...at, u.username !== undefined ? 'username' : 'password'], message: 'use auth, or username and password, not both' });
  }
  if (a?.kind === 'oauth2') {
    // A bearer token is as good as a password to whoever reads it.
    if (tlsModeOf(u) === 'none') issues.push({ path: [...at, 'tls'], message: 'OAuth2 access tokens would travel in cleartext with tls: none; use starttls or implicit' });
    if (a.tokenUrl !== undefined && !isHttpsOrLoopback(a.tokenUrl)) {
      issues.push({ path: [...at, 'auth', 'tokenUrl'], message: 'must be https:// (plain http only to a loopback address: client secrets travel over it)' });
    }
    if (a.provider === 'microsoft') {
      const certificate = a.certificate !== undefined || a.privateKey !== undefined;
      if (a.clientSecret === undefined && !certificate) issues.push({ path: [...at, 'auth', 'clientSecret'], message: 'is required, or certificate and privateKey' });
      else if (a.clientSecret !== undefined && certificate) issues.push({ path: [...at, 'auth', 'clientSecret'], message: 'use clientSecret, or certificate and privateKey, not both' });
      else if (certificate && (a.certificate === undefined || a.privateKey === undefined)) {
        issues.push({ path: [...at, 'auth', a.certificate === undefined ? 'certificate' : 'privateKey'], message: 'certificate and privateKey go together' });
      }
    }
  }
  if ((u.username === undefined) !== (u.password === undefined)) {
    const missing = u.username === undefined ? 'username' : 'password';
    issues.push({ path: [...at, missing], message: 'username and password go together' });
  }
  const password = u.password !== undefined ? [...at, 'password'] : a?.kind === 'password' ? [...at, 'auth', 'password'] : undefined;
  if (password && tlsModeOf(u) === 'none' && !u.allowInsecureAuth) {
    issues.push({
      path: password,
      message: 'credentials would travel in cleartext with tls: none; use starttls or implicit, or set allowInsecureAuth: true',
    });
  }
}

function checkOps(o: RawConfig['ops'], issues: PathIssue[]): void {
  o.tokens.forEach((t, i) => {
    // What a tenant's own staff may see: its traced mail. Metrics, preflight and drain are the platform's.
    if (t.tenant !== undefined && t.scopes.some((s) => s !== 'trace' && s !== 'queue')) issues.push({ path: ['ops', 'tokens', i, 'scopes'], message: 'a token with tenant may only have the trace and queue scopes (its own mail)' });
  });
  const tokens = [...(o.token !== undefined ? [o.token] : []), ...o.tokens.map((t) => t.token)];
  if (new Set(tokens).size !== tokens.length) issues.push({ path: ['ops', 'tokens'], message: 'the same token is listed twice' });
}

/** What a tenant is checked against besides its own keys. */
export interface TenantRules {
  /** The platform has a DKIM key a tenant's selector could sign with. */
  readonly platformKey: boolean;
  /** A tenant whose side typed its upstream in (tenant files, platform records): the ports it may name. */
  readonly hostPolicy?: UpstreamHostPolicy;
}

/** The rules of one tenant, from the config files or from a platform record. */
export function checkTenant(t: RawTenant, at: readonly (string | number)[], issues: PathIssue[], rules: TenantRules): void {
  if (t.upstream && rules.hostPolicy) checkUpstreamPort(t.upstream, rules.hostPolicy, [...at, 'upstream', 'port'], issues);
  if (t.dkim.privateKey !== undefined && t.dkim.selector === undefined) issues.push({ path: [...at, 'dkim', 'selector'], message: 'is required with privateKey' });
  if (!t.dkim.disablePlatformDkim && t.dkim.selector !== undefined && t.dkim.privateKey === undefined && !rules.platformKey) {
    issues.push({ path: [...at, 'dkim', 'selector'], message: 'there is no key to sign with: set privateKey here or under the top-level dkim' });
  }
  if (t.identity.rewriteEnvelopeSender && t.identity.from === undefined) {
    issues.push({ path: [...at, 'identity', 'rewriteEnvelopeSender'], message: 'needs identity.from, the address to send as' });
  }
  if (t.events?.webhook) checkWebhook(t.events.webhook, [...at, 'events', 'webhook'], issues);
  // A signature vouches for its d= domain: a tenant signs as a domain it owns, nobody else's.
  if (t.dkim.signingDomain !== undefined && !ownsDomain(t, t.dkim.signingDomain)) {
    issues.push({ path: [...at, 'dkim', 'signingDomain'], message: `"${t.dkim.signingDomain}" is not a domain of this tenant (its match.domains, the domain of a match.addresses entry or of identity.from)` });
  }
}

/** A tenant's side may name only the ports its host policy allows (mail's, unless widened). */
export function checkUpstreamPort(u: RawUpstream, policy: UpstreamHostPolicy, at: readonly (string | number)[], issues: PathIssue[]): void {
  if (u.kind !== 'smtp') return;
  const port = u.port ?? DEFAULT_UPSTREAM_PORT[tlsModeOf(u)];
  if (policy.ports.length > 0 && !policy.ports.includes(port)) issues.push({ path: at, message: `${port} is not a port the upstream host policy allows (${policy.ports.join(', ')})` });
}

function checkWebhook(w: NonNullable<RawConfig['events']['webhook']>, at: readonly (string | number)[], issues: PathIssue[]): void {
  // Events name tenants, senders and recipients: cleartext only on this machine.
  if (!isHttpsOrLoopback(w.url)) issues.push({ path: [...at, 'url'], message: 'must be https:// (plain http only to a loopback address)' });
  const key = Buffer.from(w.secret.slice('whsec_'.length), 'base64');
  if (key.length < 24 || key.length > 64) issues.push({ path: [...at, 'secret'], message: `is ${key.length} bytes after whsec_; Standard Webhooks keys are 24 to 64 random bytes (echo whsec_$(openssl rand -base64 32))` });
}

/** An upstream that names an installed client certificate names one that exists. */
export function checkCertificateName(u: RawUpstream, at: readonly (string | number)[], installed: (name: string) => boolean, issues: PathIssue[]): void {
  if (u.kind !== 'smtp' || typeof u.tls !== 'object' || u.tls.clientCertificateName === undefined) return;
  const name = u.tls.clientCertificateName;
  if (!installed(name)) issues.push({ path: [...at, 'tls', 'clientCertificateName'], message: `"${name}" is not a certificate under clientCertificates` });
}
