// tenant-relay check: validate the config and print the routing table.
import { parseArgs } from 'node:util';
import { dkimPlan } from '../routing/decide.js';
import { modeOf, routeOf } from '../routing/route.js';
import { loadFrom } from './config-file.js';
import type { CommandIo } from './io.js';
import { authText } from './upstream-text.js';

export async function check(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const config = loadFrom(values);
  io.out(`${config.source}: ok, ${config.tenants.length} tenant(s)\n`);
  const rows = [['TENANT', 'RECOGNISED BY', 'UPSTREAM', 'TLS', 'AUTH', 'MODE', 'DKIM']];
  for (const t of [...config.tenants, undefined]) {
    const route = routeOf(t, config);
    const upstream = route.upstream;
    const by = t ? [...t.match.authUsers.map((u) => `auth:${u}`), ...t.match.addresses, ...t.match.domains].join(' ') : '(no match)';
    const where = upstream.kind === 'maildir' ? `maildir ${upstream.path}` : `${upstream.host}:${upstream.port}`;
    const via = `${route.via === 'tenant' ? where : `smarthost ${where}`}${route.fallback ? ` (smarthost after ${route.fallback.afterMs / 60_000} min)` : ''}`;
    const dkim = dkimPlan(t, config);
    const mode = modeOf(t, config);
    rows.push([t?.id ?? '-', by || '(nothing)', via, upstream.kind === 'smtp' ? upstream.tls : '-', authText(upstream), mode, dkim.kind === 'sign' ? `on (s=${dkim.selector}, ${dkim.keyOwner} key)` : `off (${dkim.reason})`]);
  }
  const widths = rows[0]?.map((_, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? '').length), 0)) ?? [];
  // One write for the whole table: 10,000 tenants are 10,000 lines.
  io.out(rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n'));
  return 0;
}
