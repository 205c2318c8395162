// BENCH_ONLY=suppression: what checking a recipient against its tenant's suppression list costs, with
// BENCH_SUPPRESSIONS (1 M) entries over 200 tenants in the store a relay without Redis uses (SQLite
// beside the spool): a hit and a miss, per recipient, as the queue checks each message's recipients.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { LocalSuppressions } from '../relay/suppression/local-store.js';

const ENTRIES = Number(process.env.BENCH_SUPPRESSIONS ?? 1_000_000);
const CHECKS = 20_000;

export interface SuppressionResult {
  readonly entries: number;
  readonly fillSeconds: number;
  readonly hitUs: number;
  readonly missUs: number;
}

export async function suppressionScenario(tmp: string): Promise<SuppressionResult> {
  const dir = path.join(tmp, 'suppression');
  fs.mkdirSync(dir, { recursive: true });
  const store = new LocalSuppressions(path.join(dir, 'suppressions.db'));
  const now = Date.now();
  const t0 = performance.now();
  for (let i = 0; i < ENTRIES; i++) await store.add({ tenant: `t${i % 200}`, address: `user${i}@example.com`, reason: '550 5.1.1 User unknown', source: 'bounce', at: now, expiresAt: now + 30 * 86_400_000 });
  const fillSeconds = (performance.now() - t0) / 1000;
  const time = async (address: (i: number) => string) => {
    const start = process.cpuUsage();
    for (let i = 0; i < CHECKS; i++) await store.check(`t${(i * 7919) % 200}`, [address(i)], now);
    const used = process.cpuUsage(start);
    return Math.round(((used.user + used.system) / CHECKS) * 10) / 10;
  };
  // A hit: an address suppressed for that tenant (user<k>@ belongs to tenant k % 200).
  const hitUs = await time((i) => {
    const k = ((i * 104_729) % Math.floor(ENTRIES / 200)) * 200 + ((i * 7919) % 200);
    return `user${k}@example.com`;
  });
  const missUs = await time((i) => `nobody${i}@example.com`);
  store.close();
  return { entries: ENTRIES, fillSeconds: Math.round(fillSeconds * 10) / 10, hitUs, missUs };
}

export const suppressionLine = (r: SuppressionResult) =>
  `suppression: ${r.entries.toLocaleString('en')} entries (added in ${r.fillSeconds} s); a recipient checked in ${r.hitUs} us CPU when suppressed, ${r.missUs} us when not`;
