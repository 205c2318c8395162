// Rules that span more than one key: the schema checks each value, these check the file as a whole.
import { asciiDomain, normalizeAddress } from './directory.js';
import { isHttpsOrLoopback, parseCidr } from './networks.js';
import type { RawConfig, RawUpstream } from './schema.js';

export interface PathIssue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

export function crossCheck(raw: RawConfig): PathIssue[] {
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
  });

  checkUpstream(raw.smarthost, ['smarthost'], issues);
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
    if (t.upstream) checkUpstream(t.upstream, at('upstream'), issues);
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
  const a = u.auth;
  if (a && (u.username !== undefined || u.password !== undefined)) {
    issues.push({ path: [...at, u.username !== undefined ? 'username' : 'password'], message: 'use auth, or username and password, not both' });
  }
  if (a?.kind === 'oauth2') {
    // A bearer token is as good as a password to whoever reads it.
    if (u.tls === 'none') issues.push({ path: [...at, 'tls'], message: 'OAuth2 access tokens would travel in cleartext with tls: none; use starttls or implicit' });
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
  if (password && u.tls === 'none' && !u.allowInsecureAuth) {
    issues.push({
      path: password,
      message: 'credentials would travel in cleartext with tls: none; use starttls or implicit, or set allowInsecureAuth: true',
    });
  }
}
