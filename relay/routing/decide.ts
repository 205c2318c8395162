// The routing decision: pure, no I/O. The inbound server and the `explain` command both call this.
import type { Config } from '../../config/types.js';
import { Replies } from '../errors.js';
import { identifyTenant } from '../tenancy/identify.js';
import type { AuthIdentity, Decision, Envelope, TenantMatch } from '../types.js';

export function decide(envelope: Pick<Envelope, 'mailFrom'>, auth: AuthIdentity | undefined, config: Config): Decision {
  const found = identifyTenant(envelope.mailFrom, auth, config);
  if (found.kind === 'conflict') {
    return {
      kind: 'refuse',
      reply: Replies.senderTenantConflict(found.auth.tenant.id, found.sender.tenant.id),
      reason: `${describe(found.auth)} but ${describe(found.sender)}; conflict rule is "refuse"`,
    };
  }
  if (found.kind === 'none') {
    return {
      kind: 'route',
      route: { upstream: config.smarthost, via: 'smarthost' },
      reason: `no tenant matched ${envelope.mailFrom ? `sender ${envelope.mailFrom}` : 'the null sender'}${auth ? ` or AUTH user ${auth.username}` : ''}; global smarthost`,
    };
  }
  const { tenant } = found.match;
  const route = tenant.upstream
    ? ({ upstream: tenant.upstream, via: 'tenant' } as const)
    : ({ upstream: config.smarthost, via: 'smarthost' } as const);
  const where = route.via === 'tenant' ? "the tenant's own upstream" : 'global smarthost (tenant has no upstream)';
  return { kind: 'route', tenant, route, reason: `${describe(found.match)}; ${where}` };
}

function describe(m: TenantMatch): string {
  const what = { auth: 'AUTH user', address: 'sender address', domain: 'sender domain' }[m.by];
  return `${what} ${m.key} is tenant ${m.tenant.id}`;
}
