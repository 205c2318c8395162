// tenant-relay preflight: connect, TLS and AUTH against every upstream, no mail sent.
import { parseArgs } from 'node:util';
import type { CertificateFacts } from '../../config/certificate-names.js';
import type { Upstream } from '../../config/types.js';
import { AccessTokens } from '../delivery/oauth2/tokens.js';
import { preflight } from '../delivery/preflight.js';
import { createLogger } from '../log.js';
import { loadFrom } from './config-file.js';
import type { CommandIo } from './io.js';

export async function preflightCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, tenant: { type: 'string' }, json: { type: 'boolean' } } });
  const config = loadFrom(values);
  const tenants = values.tenant ? config.tenants.filter((t) => t.id === values.tenant) : config.tenants;
  if (values.tenant && tenants.length === 0) {
    io.err(`tenant-relay preflight: no tenant "${values.tenant}"`);
    return 2;
  }
  // Each distinct upstream once, with the tenants that use it.
  const users = new Map<Upstream, string[]>();
  for (const t of tenants) {
    const u = t.upstream ?? config.smarthost;
    users.set(u, [...(users.get(u) ?? []), t.id]);
  }
  if (!values.tenant) users.set(config.smarthost, [...(users.get(config.smarthost) ?? []), '(no tenant)']);
  const reports = [];
  const tokens = new AccessTokens({ logger: createLogger('error') });
  for (const [upstream, ids] of users) {
    if (upstream.kind === 'maildir') {
      reports.push({ upstream: upstream.name, tenants: ids, address: `maildir ${upstream.path}`, ok: true });
      continue;
    }
    const owners = config.tenants.filter((t) => ids.includes(t.id));
    reports.push({ ...(await preflight(upstream, { heloName: config.hostname, tokens, hostPolicy: upstream.hostPolicy ?? config.upstreamHosts, operator: true, tenants: owners })), tenants: ids });
  }
  if (values.json) io.out(JSON.stringify(reports, null, 2));
  else {
    for (const r of reports) {
      const facts =
        'reachable' in r
          ? [
              r.reachable ? 'reachable' : r.category.toUpperCase(),
              r.tlsVersion,
              r.certificateDaysLeft !== undefined ? `certificate expires in ${r.certificateDaysLeft} days (${r.certificateExpires})` : undefined,
              r.clientCertificate ? certificateText(r.clientCertificate) : undefined,
              r.token ? `oauth2 token until ${r.token.expires}${r.token.scopes.length ? ` for ${r.token.scopes.join(' ')}` : r.token.requested ? ` (scopes not stated by the endpoint; asked for ${r.token.requested})` : ''}` : undefined,
              `auth ${r.authKind === 'none' ? '' : `(${r.authKind}) `}${r.auth}`,
            ]
          : ['local'];
      const more = 'error' in r ? [r.error, r.upstreamReply && `upstream said: ${r.upstreamReply}`].filter(Boolean) : [];
      io.out(`${r.ok ? 'ok  ' : 'FAIL'}  ${r.upstream} (${r.address}) for ${r.tenants.join(', ')}: ${facts.filter(Boolean).join(', ')}${more.map((m) => `\n      ${m}`).join('')}`);
    }
  }
  return reports.every((r) => r.ok) ? 0 : 1;
}

function certificateText(c: CertificateFacts): string {
  const whose = c.tenantDomain ? `${c.tenantDomain} is a domain of the tenant` : "none of its names is a domain of the tenant: the upstream's connector will not know it";
  return `client certificate ${c.label} for ${c.names.join(' ') || c.subject} (${whose}), expires in ${c.daysLeft} days (${c.expires})`;
}
