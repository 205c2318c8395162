// The spool's volume never fills from mail intake: MAIL FROM answers 452 4.3.1 while there is still room
// for what the transactions being received may write, the trace keeps to its cap as it grows, and a
// tenant whose waiting mail fills its share of the spool hears 452 4.3.1 alone. On a real 40 MB tmpfs
// where the test may mount one (as root), and the accounting on its own where it may not.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { DiskSpace } from '../relay/disk-space.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const MB = 1024 * 1024;

function mountTmpfs(megabytes: number): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-volume-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m,mode=0700`, 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    fs.rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

const volume = mountTmpfs(40);

t.test('a 40 MB volume, 10 MB floor, 200 messages of 200 KB to 100 recipients each: never full, nothing accepted lost, the trace within its cap', { skip: volume ? false : 'needs root to mount a tmpfs' }, async (t) => {
  const dir = volume as string;
  t.teardown(() => {
    execFileSync('umount', [dir], { stdio: 'ignore' });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  let open = false;
  const upstream = await startUpstream({ data: () => (open ? undefined : [451, '4.3.0 not now']) });
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: ${dir}/spool, minFreeMegabytes: 10 }, retry: { minSeconds: 1, maxSeconds: 1, jitter: 0 } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
trace: { maxMegabytes: 1 }
events: { webhook: { url: "http://127.0.0.1:9/down", secret: "whsec_${Buffer.alloc(32, 1).toString('base64')}" } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  let lowest = Number.POSITIVE_INFINITY;
  let traceHighest = 0;
  const sample = setInterval(() => {
    const s = fs.statfsSync(dir);
    lowest = Math.min(lowest, s.bavail * s.bsize);
    const traceFiles = ['trace.db', 'trace.db-wal'].map((f) => path.join(dir, 'spool', f));
    traceHighest = Math.max(traceHighest, traceFiles.reduce((n, f) => n + (fs.existsSync(f) ? fs.statSync(f).size : 0), 0));
  }, 10);
  t.teardown(() => clearInterval(sample));
  const body = `From: <app@example.org>\r\nSubject: big\r\n\r\n${'x'.repeat(76)}\r\n`.padEnd(200 * 1024, `${'y'.repeat(78)}\r\n`);
  const recipients = Array.from({ length: 100 }, (_, i) => `r${i}@example.com`);
  const replies: string[] = [];
  for (let round = 0; round < 20; round++) {
    replies.push(...(await Promise.all(Array.from({ length: 10 }, () => replyOf(sendThrough(relay.port, { from: 'app@example.org', to: recipients, raw: body }))))));
  }
  const accepted = replies.filter((r) => r === 'resolved').length;
  const refused = replies.filter((r) => /^452 4\.3\.1 Insufficient system storage/.test(r)).length;
  t.ok(accepted > 20, `${accepted} accepted`);
  t.equal(accepted + refused, 200, `the rest (${refused}) heard 452 4.3.1, nothing else`);
  t.ok(lowest > 2 * MB, `the volume never filled: at least ${(lowest / MB).toFixed(1)} MB free throughout`);
  t.ok(traceHighest <= 1.1 * MB, `the trace and its WAL stayed within 10 % of 1 MB (${(traceHighest / MB).toFixed(2)} MB at most)`);
  open = true;
  for (let i = 0; i < 30 && relay.relay.scheduler.size > 0; i++) await relay.relay.scheduler.runDue(Date.now() + (i + 1) * 2000);
  t.equal(upstream.received.length, accepted, 'every accepted message delivered');
});

t.test('the accounting: what transactions may still write is held, so concurrent ones cannot take the volume past its floor', async (t) => {
  let free = 100 * MB;
  const disk = new DiskSpace('/', () => 10 * MB, async () => ({ bavail: free / 4096, bsize: 4096 }));
  t.teardown(() => disk.close());
  const held: { release: () => void }[] = [];
  for (let i = 0; i < 100; i++) {
    const room = await disk.reserve(10 * MB, 50 * MB);
    if (!room) break;
    held.push(room);
  }
  t.equal(held.length, 9, 'nine 10 MB messages fit above a 10 MB floor on 100 MB, not a tenth');
  held[0]?.release();
  t.ok(await disk.reserve(10 * MB, 50 * MB), 'one ended: room for one more');
  disk.written(95 * MB);
  t.ok(disk.belowFloor, 'what was written since the last look counts at once');
  free = 5 * MB;
  t.equal(await disk.reserve(undefined, 50 * MB), undefined);
});

t.test("a tenant whose waiting mail fills its share of the spool hears 452 4.3.1; nobody else does", async (t) => {
  const upstream = await startUpstream({ data: [451, '4.3.0 not now'] });
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL}, perTenant: { maxMessages: 100 } } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
tenants:
  - { id: hog, match: { domains: [hog.test] }, delivery: { spool: { maxMessages: 3 } } }
  - { id: other, match: { domains: [other.test] } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  for (let i = 0; i < 3; i++) await sendThrough(relay.port, { from: 'app@hog.test', to: 'x@example.com' });
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@hog.test', to: 'x@example.com' })), /^452 4\.3\.1 Tenant hog has too much mail waiting to be delivered/);
  for (let i = 0; i < 5; i++) t.match((await sendThrough(relay.port, { from: 'app@other.test', to: 'x@example.com' })).response, /^250 /, `another tenant, message ${i + 1}`);
});
