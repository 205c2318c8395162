// tenant-relay check: validate the config and print the routing table.
import { parseArgs } from 'node:util';
import { dkimPlan } from '../routing/decide.js';
import { loadFrom } from './config-file.js';

export async function check(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const config = loadFrom(values);
  console.log(`${config.source}: ok, ${config.tenants.length} tenant(s)\n`);
  const rows = [['TENANT', 'RECOGNISED BY', 'UPSTREAM', 'TLS', 'MODE', 'DKIM']];
  for (const t of [...config.tenants, undefined]) {
    const upstream = t?.upstream ?? config.smarthost;
    const by = t ? [...t.match.authUsers.map((u) => `auth:${u}`), ...t.match.addresses, ...t.match.domains].join(' ') : '(no match)';
    const where = upstream.kind === 'maildir' ? `maildir ${upstream.path}` : `${upstream.host}:${upstream.port}`;
    const via = t?.upstream ? where : `smarthost ${where}`;
    const dkim = dkimPlan(t, config);
    const mode = t?.delivery.mode ?? config.delivery.mode;
    rows.push([t?.id ?? '-', by || '(nothing)', via, upstream.kind === 'smtp' ? upstream.tls : '-', mode, dkim.kind === 'sign' ? `on (s=${dkim.selector}, ${dkim.keyOwner} key)` : `off (${dkim.reason})`]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
  return 0;
}
