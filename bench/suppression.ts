// BENCH_ONLY=suppression: what checking a recipient against its tenant's suppression list costs, with
// BENCH_SUPPRESSIONS (1 M) entries over 200 tenants: in the store a relay without Redis uses (SQLite
// beside the spool), and, where redis-server is installed, in Redis (a server this bench starts on a
// loopback port): a hit and a miss, per recipient, as the queue checks each message's recipients; for
// Redis the relay's CPU with its index of the fleet's list (as it runs), and asking Redis each time (as
// it does while the index is not in step), with the wall time of the round trip.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { silentLogger } from '../relay/log.js';
import { connectRedis } from '../relay/redis.js';
import { LocalSuppressions } from '../relay/suppression/local-store.js';
import { RedisSuppressions } from '../relay/suppression/redis-store.js';

const ENTRIES = Number(process.env.BENCH_SUPPRESSIONS ?? 1_000_000);
const CHECKS = 20_000;

export interface SuppressionResult {
  readonly entries: number;
  readonly fillSeconds: number;
  readonly hitUs: number;
  readonly missUs: number;
  readonly redis?: {
    readonly hitCpuUs: number;
    readonly hitWallUs: number;
    readonly missCpuUs: number;
    readonly missWallUs: number;
    readonly inFlight10CpuUs: number;
    readonly tenPerMessageCpuUs: number;
    /** With the relay's index of the fleet's list (redis-index.ts), one recipient at a time. */
    readonly indexed: { readonly ready: boolean; readonly fillSeconds: number; readonly hitCpuUs: number; readonly hitAgainCpuUs: number; readonly missCpuUs: number };
  };
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

/**
 * The same in Redis, through the relay's own connection (relay/redis.ts: its deadlines and options):
 * entries written through the store, then checks of one recipient one after another (an app sending one
 * message at a time), ten in flight (a relay at concurrency 10), and of ten recipients a message.
 */
async function inRedis(now: number): Promise<SuppressionResult['redis']> {
  if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('redis-server is not installed');
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
  const settings = { url: `redis://127.0.0.1:${port}`, keyPrefix: 'bench:', signingKey: 'bench-signing-key-0123456789abcdef-0123', timeoutMs: 1000 };
  const redis = connectRedis(settings, silentLogger, 'limits');
  const subscriber = connectRedis(settings, silentLogger, 'subscriber');
  try {
    for (let i = 0; i < 100 && redis.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 50));
    const plain = new RedisSuppressions(redis, settings);
    for (let i = 0; i < ENTRIES; i += 1000) {
      const batch: Promise<void>[] = [];
      for (let j = i; j < Math.min(ENTRIES, i + 1000); j++) batch.push(plain.add({ tenant: `t${j % 200}`, address: `user${j}@example.com`, reason: '550 5.1.1 User unknown', source: 'bounce', at: now, expiresAt: now + 30 * 86_400_000 }));
      await Promise.all(batch);
    }
    // As a relay runs it: the index of the fleet's list filled from the keys, then kept by the channel.
    const indexed = new RedisSuppressions(redis, settings, { subscriber, logger: silentLogger });
    const fillStarted = performance.now();
    for (let i = 0; i < 1200 && !indexed.indexReady; i++) await new Promise((r) => setTimeout(r, 50));
    const indexFillSeconds = Math.round((performance.now() - fillStarted) / 100) / 10;
    const checks = 5000;
    const hitAddress = (i: number) => `user${((i * 104_729) % Math.floor(ENTRIES / 200)) * 200 + ((i * 7919) % 200)}@example.com`;
    const missAddress = (i: number) => `nobody${i}@example.com`;
    /** CPU and wall time per recipient: `inFlight` checks at a time, each of `perMessage` recipients. */
    const time = async (address: (i: number) => string, inFlight = 1, perMessage = 1, store: RedisSuppressions = plain) => {
      const cpu = process.cpuUsage();
      const t0 = performance.now();
      let next = 0;
      const lane = async () => {
        while (next < checks) {
          const i = next;
          next += perMessage;
          await store.check(`t${(i * 7919) % 200}`, Array.from({ length: perMessage }, (_, k) => address(i + k)), now);
        }
      };
      await Promise.all(Array.from({ length: inFlight }, lane));
      const used = process.cpuUsage(cpu);
      const per = (x: number) => Math.round((x / checks) * 10) / 10;
      return { cpu: per(used.user + used.system), wall: per((performance.now() - t0) * 1000) };
    };
    // Warm, and past the collection of what the fill left: the first round pays it.
    await time(hitAddress);
    await time(missAddress);
    const hit = await time(hitAddress);
    const miss = await time(missAddress);
    const concurrent = await time(missAddress, 10);
    const perTen = await time(missAddress, 1, 10);
    await time(missAddress, 1, 1, indexed);
    const indexedHit = await time(hitAddress, 1, 1, indexed);
    // The same suppressed addresses again (an app that keeps sending to a gone address): confirmed lately.
    const indexedHitAgain = await time(hitAddress, 1, 1, indexed);
    const indexedMiss = await time(missAddress, 1, 1, indexed);
    indexed.close();
    return {
      hitCpuUs: hit.cpu,
      hitWallUs: hit.wall,
      missCpuUs: miss.cpu,
      missWallUs: miss.wall,
      inFlight10CpuUs: concurrent.cpu,
      tenPerMessageCpuUs: perTen.cpu,
      indexed: { ready: indexed.indexReady, fillSeconds: indexFillSeconds, hitCpuUs: indexedHit.cpu, hitAgainCpuUs: indexedHitAgain.cpu, missCpuUs: indexedMiss.cpu },
    };
  } finally {
    redis.disconnect();
    subscriber.disconnect();
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
  (r.redis
    ? `; in Redis, with the relay's index (filled in ${r.redis.indexed.fillSeconds} s${r.redis.indexed.ready ? '' : ', NOT READY'}), of its CPU per recipient one at a time: ${r.redis.indexed.hitCpuUs} us suppressed (${r.redis.indexed.hitAgainCpuUs} us the next time within a minute), ${r.redis.indexed.missCpuUs} us not; asking Redis each time: ${r.redis.hitCpuUs} us suppressed, ${r.redis.missCpuUs} us not (round trip ${r.redis.hitWallUs} / ${r.redis.missWallUs} us), ${r.redis.inFlight10CpuUs} us with ten in flight, ${r.redis.tenPerMessageCpuUs} us at ten recipients a message`
    : '');
