// The routing decision: pure, no I/O, and whole: tenant, route (with its fallback), delivery mode,
// rewrites, DKIM and the reason. The inbound server and the `explain` command both call this.
import { ownedSummary } from '../../config/ownership.js';
import type { Config, Tenant } from '../../config/types.js';
import { Replies } from '../errors.js';
import { identifyTenant } from '../tenancy/identify.js';
import type { AuthIdentity, Decision, DkimPlan, Envelope, Rewrites, TenantFinder, TenantMatch } from '../types.js';
import { modeOf, routeOf } from './route.js';

/** `tenants` defaults to the config's own; resolveTenants() adds the platform's answers behind them. */
export function decide(envelope: Pick<Envelope, 'mailFrom'>, auth: AuthIdentity | undefined, config: Config, tenants: TenantFinder = config.directory): Decision {
  const found = identifyTenant(envelope.mailFrom, auth, config, tenants);
  if (found.kind === 'conflict') {
    return {
      kind: 'refused',
      reply: Replies.senderTenantConflict(found.auth.tenant.id, found.sender.tenant.id),
      reason: `${describe(found.auth)} but ${describe(found.sender)}; conflict rule is "refuse"`,
    };
  }
  if (found.kind === 'none') {
    return {
      kind: 'route',
      route: routeOf(undefined, config),
      mode: modeOf(undefined, config),
      rewrites: {},
      dkim: dkimPlan(undefined, config),
      reason: `no tenant matched ${envelope.mailFrom ? `sender ${envelope.mailFrom}` : 'the null sender'}${auth ? ` or AUTH user ${auth.username}` : ''}; global smarthost`,
    };
  }
  const { tenant } = found.match;
  const authTenant = found.match.by === 'auth';
  // A tenant's user may not borrow an address nobody claims: with the tenant's credentials it would
  // go out as anyone. (An address another tenant claims is the conflict rule's business, above.)
  if (authTenant && !found.bySender && envelope.mailFrom !== '' && config.inbound.tenantUsersSendAs === 'own-senders') {
    return {
      kind: 'refused',
      reply: Replies.senderNotOfTenant(envelope.mailFrom, tenant.id),
      reason: `${describe(found.match)} but no tenant claims sender ${envelope.mailFrom}; tenantUsersSendAs is "own-senders"`,
    };
  }
  const route = routeOf(tenant, config);
  const where = route.via === 'tenant' ? "the tenant's own upstream" : 'global smarthost (tenant has no upstream)';
  return {
    kind: 'route',
    tenant,
    route,
    mode: modeOf(tenant, config),
    rewrites: rewritesFor(tenant),
    dkim: dkimPlan(tenant, config),
    headerFrom: { tenant, ownOnly: config.inbound.checkHeaderFrom, tenants },
    reason: `${describe(found.match)}; ${where}`,
  };
}

function rewritesFor(tenant: Tenant): Rewrites {
  const { from, displayName, replyTo, rewriteEnvelopeSender } = tenant.identity;
  return {
    ...(from !== undefined || displayName !== undefined
      ? { from: { ...(from !== undefined ? { address: from } : {}), ...(displayName !== undefined ? { name: displayName } : {}) } }
      : {}),
    ...(replyTo !== undefined ? { replyTo } : {}),
    ...(rewriteEnvelopeSender && from !== undefined ? { envelopeSender: from } : {}),
  };
}

/**
 * The tenant's own key if it has one, else the platform's; never when the tenant signs for itself. A
 * signature with d= the From domain (or the tenant's signingDomain) is made only for a From the tenant
 * owns; mail of no tenant is signed only as the platform itself (its own dkim.signingDomain), never with
 * the domain of its From.
 */
export function dkimPlan(tenant: Tenant | undefined, config: Config): DkimPlan {
  if (tenant?.dkim.disablePlatformDkim) return { kind: 'off', reason: `tenant ${tenant.id} signs with its own infrastructure` };
  const own = tenant?.dkim.privateKey;
  const key = own ?? config.dkim.privateKey;
  const selector = tenant?.dkim.selector ?? config.dkim.selector;
  if (!key || selector === undefined) return { kind: 'off', reason: 'no DKIM key configured' };
  const keyOwner = own ? 'tenant' : 'platform';
  const platformDomain = config.dkim.signingDomain;
  if (!tenant) {
    if (platformDomain === undefined) return { kind: 'off', reason: "mail of no tenant is signed only as the platform (set dkim.signingDomain), never as its From's domain" };
    return { kind: 'sign', selector, key, keyOwner, signingDomain: platformDomain, reason: `as the platform (d=${platformDomain}), for mail of no tenant` };
  }
  const tenantDomain = tenant.dkim.signingDomain;
  if (tenantDomain === undefined && platformDomain !== undefined) {
    return { kind: 'sign', selector, key, keyOwner, signingDomain: platformDomain, reason: `as the platform (d=${platformDomain}), whatever the From` };
  }
  return {
    kind: 'sign',
    selector,
    key,
    keyOwner,
    ...(tenantDomain !== undefined ? { signingDomain: tenantDomain } : {}),
    fromOwner: tenant,
    reason: `only when the From is tenant ${tenant.id}'s own (${ownedSummary(tenant)}); any other From leaves unsigned`,
  };
}

function describe(m: TenantMatch): string {
  const what = { auth: 'AUTH user', address: 'sender address', domain: 'sender domain' }[m.by];
  return `${what} ${m.key} is tenant ${m.tenant.id}`;
}
