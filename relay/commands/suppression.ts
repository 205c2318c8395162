// tenant-relay suppression: list, add, remove and export a tenant's suppressed addresses, in the store the
// relay uses (Redis with limits.store.redis, else suppressions.db beside the spool).
import { parseArgs } from 'node:util';
import { silentLogger } from '../log.js';
import { openSuppressions } from '../suppression/open.js';
import { suppressionOf } from '../suppression/store.js';
import { loadFrom } from './config-file.js';
import type { CommandIo } from './io.js';

const USAGE = 'tenant-relay suppression list --tenant T [--json] | add --tenant T --address A [--reason TEXT] [--days N] | remove --tenant T --address A | export [--tenant T]';

export async function suppressionCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, tenant: { type: 'string' }, address: { type: 'string' }, reason: { type: 'string' }, days: { type: 'string' }, json: { type: 'boolean' } },
  });
  const [action] = positionals;
  const config = loadFrom(values);
  // '-' names mail of no tenant (the global route).
  const tenant = values.tenant === '-' ? '' : values.tenant;
  if (!action || !['list', 'add', 'remove', 'export'].includes(action) || (action !== 'export' && tenant === undefined) || ((action === 'add' || action === 'remove') && !values.address)) {
    io.err(USAGE);
    return 2;
  }
  const opened = openSuppressions(config, silentLogger);
  const { store } = opened;
  try {
    const now = Date.now();
    switch (action) {
      case 'add': {
        const days = values.days === undefined ? undefined : Number(values.days);
        if (days !== undefined && !(days > 0 && days <= 3650)) {
          io.err('tenant-relay suppression: --days must be a number from 1 to 3650');
          return 2;
        }
        const expiryMs = days !== undefined ? days * 86_400_000 : suppressionOf(config, tenant || null).expiryMs;
        await store.add({ tenant: tenant ?? '', address: values.address ?? '', reason: values.reason ?? 'added by hand', source: 'hand', at: now, expiresAt: now + expiryMs });
        io.out(`suppressed ${values.address} for ${tenant || '(no tenant)'} until ${new Date(now + expiryMs).toISOString()}`);
        return 0;
      }
      case 'remove': {
        const removed = await store.remove(tenant ?? '', values.address ?? '');
        io.out(removed ? `${values.address} is no longer suppressed for ${tenant || '(no tenant)'}` : `${values.address} was not suppressed for ${tenant || '(no tenant)'}`);
        return removed ? 0 : 1;
      }
      default: {
        // Page by page: a list of a million entries is never all in memory at once.
        let after: string | undefined;
        let count = 0;
        for (let page = 0; page < 100_000; page++) {
          const entries = await store.list({ ...(tenant !== undefined ? { tenant } : {}), ...(after !== undefined ? { after } : {}), limit: 1000, now });
          for (const e of entries) {
            count++;
            if (action === 'export' || values.json) io.out(JSON.stringify(e));
            else io.out(`${e.address}  ${e.source}  since ${new Date(e.at).toISOString()}  until ${new Date(e.expiresAt).toISOString()}  ${e.reason}`);
          }
          const last = entries.at(-1);
          if (!last || entries.length < 1000) break;
          after = tenant !== undefined ? last.address : `${last.tenant} ${last.address}`;
        }
        if (action === 'list' && !values.json && count === 0) io.out(`no address is suppressed for ${tenant || '(no tenant)'}`);
        return 0;
      }
    }
  } finally {
    opened.close();
  }
}
