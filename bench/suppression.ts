// BENCH_ONLY=suppression: what checking a recipient against its tenant's suppression list costs, with
// BENCH_SUPPRESSIONS (1 M) entries over 200 tenants: in the store a relay without Redis uses (SQLite
// beside the spool), and, where redis-server is installed, in Redis (a server this bench starts on a
// loopback port): a hit and a miss, per recipient, as the queue checks each message's recipients; for
// Redis the relay's CPU and the wall time of the round trip.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { LocalSuppressions } from '../relay/suppression/local-store.js';
import { RedisSuppressions } from '../relay/suppression/redis-store.js';

const ENTRIES = Number(process.env.BENCH_SUPPRESSIONS ?? 1_000_000);
const CHECKS = 20_000;

export interface SuppressionResult {
  readonly entries: number;
  readonly fillSeconds: number;
  readonly hitUs: number;
  readonly missUs: number;
  readonly redis?: { readonly hitCpuUs: number; readonly hitWallUs: number; readonly missWallUs: number };
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
  const redis = await inRedis(now).catch((err: Error) => {
    console.log(`suppression in Redis: not measured (${err.message})`);
    return undefined;
  });
  return { entries: ENTRIES, fillSeconds: Math.round(fillSeconds * 10) / 10, hitUs, missUs, ...(redis ? { redis } : {}) };
}

/** The same in Redis: entries written through the store (pipelined), then one check per recipient. */
async function inRedis(now: number): Promise<SuppressionResult['redis']> {
  if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('redis-server is not installed');
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
  const redis = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: (n) => (n > 50 ? null : 100) });
  redis.on('error', () => {});
  try {
    await redis.ping();
    const store = new RedisSuppressions(redis, { keyPrefix: 'bench:', signingKey: 'bench-signing-key-0123456789abcdef-0123' });
    for (let i = 0; i < ENTRIES; i += 1000) {
      const batch: Promise<void>[] = [];
      for (let j = i; j < Math.min(ENTRIES, i + 1000); j++) batch.push(store.add({ tenant: `t${j % 200}`, address: `user${j}@example.com`, reason: '550 5.1.1 User unknown', source: 'bounce', at: now, expiresAt: now + 30 * 86_400_000 }));
      await Promise.all(batch);
    }
    const time = async (address: (i: number) => string) => {
      const checks = 5000;
      const cpu = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < checks; i++) await store.check(`t${(i * 7919) % 200}`, [address(i)], now);
      const used = process.cpuUsage(cpu);
      return { cpu: Math.round(((used.user + used.system) / checks) * 10) / 10, wall: Math.round(((performance.now() - t0) * 1000) / checks) };
    };
    const hit = await time((i) => `user${((i * 104_729) % Math.floor(ENTRIES / 200)) * 200 + ((i * 7919) % 200)}@example.com`);
    const miss = await time((i) => `nobody${i}@example.com`);
    return { hitCpuUs: hit.cpu, hitWallUs: hit.wall, missWallUs: miss.wall };
  } finally {
    redis.disconnect();
    server.kill('SIGKILL');
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export const suppressionLine = (r: SuppressionResult) =>
  `suppression: ${r.entries.toLocaleString('en')} entries (added in ${r.fillSeconds} s); a recipient checked in ${r.hitUs} us CPU when suppressed, ${r.missUs} us when not` +
  (r.redis ? `; in Redis ${r.redis.hitCpuUs} us of the relay's CPU, a round trip of ${r.redis.hitWallUs} us (${r.redis.missWallUs} us when not suppressed)` : '');
