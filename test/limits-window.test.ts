// A per-minute limit is a per-minute limit: no 60 seconds hold more deliveries than it, on one relay, on
// three relays sharing Redis, and through a Redis outage during which one of them is restarted (its share
// of the budget remembered from before, what the fleet sent before the outage counted). Nothing is lost.
// The clock is the scheduler's own (runDue at chosen times); Redis is a real redis-server, killed for real.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { MemoryLimiter } from '../relay/limits/memory.js';
import { sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { needRedis, startRedis } from './helpers/redis.js';
import { startUpstream } from './helpers/upstream.js';

const N = 6;

/** The most deliveries any 60 s window [t, t + 60 s) holds, from deliveries counted at each time. */
function busiestMinute(deliveries: readonly { at: number; count: number }[]): number {
  let most = 0;
  for (const start of deliveries) {
    const inWindow = deliveries.filter((d) => d.at >= start.at && d.at < start.at + 60_000).reduce((n, d) => n + d.count, 0);
    most = Math.max(most, inWindow);
  }
  return most;
}

t.test('the memory limiter: never more than the limit in any 60 s, whatever the order of asking', async (t) => {
  const limiter = new MemoryLimiter();
  const budgets = [{ key: 'tenant:a', limits: { messagesPerMinute: 3 } }];
  const sent: { at: number; count: number }[] = [];
  for (let at = 0; at < 600_000; at += 1000) {
    for (let i = 0; i < 2; i++) {
      const r = limiter.reserveNow(budgets, 1, at);
      if (r.ok) {
        r.settle(1);
        sent.push({ at, count: 1 });
      }
    }
  }
  t.equal(busiestMinute(sent), 3);
  t.ok(sent.length >= 29, `${sent.length} sent in ten minutes: the limit is used, not undershot`);
  const fraction = new MemoryLimiter();
  const slow = [{ key: 'tenant:b', limits: { messagesPerMinute: 0.5 } }];
  const first = fraction.reserveNow(slow, 1, 0);
  if (first.ok) first.settle(1);
  t.ok(first.ok);
  t.match(fraction.reserveNow(slow, 1, 60_000), { ok: false, retryAt: 120_000 }, 'half a message a minute: one in any two minutes');
  // A worker among four at two a minute: half a message a minute each, so one in any two minutes.
  const worker = new MemoryLimiter(1 / 4);
  const two = [{ key: 'tenant:c', limits: { messagesPerMinute: 2 } }];
  const w = worker.reserveNow(two, 1, 0);
  if (w.ok) w.settle(1);
  t.match(worker.reserveNow(two, 1, 60_000), { ok: false, retryAt: 120_000 }, 'a share under one message a minute stretches the window');
});

t.test('three relays on one Redis at N a minute: Redis killed, a relay restarted during the outage; no 60 s window holds more than N, nothing lost', needRedis, async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-window-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const relayOn = async (spool: string) =>
    startTestRelay(
      `delivery: { mode: queue, spool: { path: ${path.join(dir, spool)} }, retry: { minSeconds: 5, maxSeconds: 5, jitter: 0 } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
limits: { store: { redis: { url: "${redis.url}", timeoutMilliseconds: 200, signingKey: "shared-signing-key-of-the-test-fleet-0123" } } }
tenants:
  - { id: acme, match: { domains: [acme.test] }, limits: { messagesPerMinute: ${N} } }
`,
      {},
      { manualScheduler: true },
    );
  const relays: TestRelay[] = [await relayOn('a'), await relayOn('b'), await relayOn('c')];
  t.teardown(() => Promise.all(relays.map((r) => r.close())));
  // Every relay's heartbeat has seen the other two (they beat every 10 s).
  await new Promise((r) => setTimeout(r, 10_500));
  for (const relay of relays) for (let i = 0; i < 10; i++) await sendThrough(relay.port, { from: 'app@acme.test', to: `r${i}@example.com` });

  const deliveries: { at: number; count: number }[] = [];
  const start = Date.now();
  let seen = 0;
  for (let s = 0; s <= 900 && seen < 30; s += 5) {
    const at = start + s * 1000;
    if (s === 40) await redis.kill();
    if (s === 70) {
      // A relay restarted while Redis is away, on the same spool: it remembers the fleet's size.
      const old = relays[2] as TestRelay;
      await old.relay.close(0);
      relays[2] = await relayOn('c');
    }
    for (const relay of relays) await relay.relay.scheduler.runDue(at);
    const now = upstream.received.length;
    if (now > seen) deliveries.push({ at, count: now - seen });
    seen = now;
  }
  t.equal(seen, 30, 'all thirty delivered in the end');
  t.ok(busiestMinute(deliveries) <= N, `at most ${N} in any 60 s (the busiest held ${busiestMinute(deliveries)})`);
  t.ok(relays.some((r) => r.logs.some((l) => l.event === 'limits-local' && l.relaysSeen === 3)), 'alone, each counted the fleet as three');
  t.ok(relays[2]?.logs.some((l) => l.event === 'limits-local' && l.relaysSeen === 3 && Math.abs(Number(l.share) - 1 / 3) < 1e-9), 'the restarted one too, from what it remembered');
});
