// Requests left for the running relay (hold, retry, delete, release, from `tenant-relay queue` or the mail
// console) are applied once each, by one round at a time, and never while an attempt of the same message
// can start: the scan's round and the console's round used to race for the same state file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { QueueRequests } from '../relay/queue/requests.js';
import { sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const upstream = await startUpstream();
t.teardown(() => upstream.close());

async function relayWithQueue(t: Test): Promise<TestRelay> {
  const relay = await startTestRelay(`delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`, {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  return relay;
}

const queued = async (relay: TestRelay, to: string) => /queued as (\w+)/.exec((await sendThrough(relay.port, { from: 'app@example.com', to })).response)?.[1] ?? '';

for (const journaled of [true, false]) {
  t.test(`rounds of requests that overlap apply a hold once, without an error (a message ${journaled ? 'in the journal' : 'in files of its own'})`, async (t) => {
    const relay = await relayWithQueue(t);
    const { spool, scheduler } = relay.relay;
    const id = await queued(relay, 'held@example.com');
    const entry = await spool.read(id);
    if (!entry) throw new Error(`${id} is not queued`);
    if (!journaled) await spool.update({ ...entry, nextAttemptAt: Date.now() + 60_000 });
    await new QueueRequests(spool.layout).leave(id, 'hold', 'console: desk');
    const rounds = await Promise.allSettled([scheduler.applyRequests(), scheduler.applyRequests(), scheduler.applyRequests()]);
    t.same(rounds.filter((r) => r.status === 'rejected').map((r) => String(r.reason)), [], 'every round ends well');
    t.ok((await spool.read(id))?.onHold, 'held');
    t.equal(relay.logs.filter((l) => l.event === 'queue-held' && l.id === id).length, 1, 'one hold, logged once');
  });
}

t.test('no attempt starts on a message while a request changes it', async (t) => {
  const relay = await relayWithQueue(t);
  const { spool, scheduler } = relay.relay;
  const requests = new QueueRequests(spool.layout);
  const sentTo = (to: string) => upstream.received.some((m) => m.rcptTo.includes(to));
  // The holds' round and rounds of attempts at every turn of the loop, the first of them a few turns in:
  // each way the two can meet, one message at a time.
  let held = 0;
  for (let wait = 0; wait < 12; wait++) {
    const to = `later-${wait}@example.com`;
    const id = await queued(relay, to);
    await requests.leave(id, 'hold', 'console: desk');
    let applied = false;
    const applying = scheduler.applyRequests().finally(() => (applied = true));
    const attempts: Promise<void>[] = [];
    for (let turn = 0; turn < 200 && !applied; turn++) {
      if (turn >= wait) attempts.push(scheduler.runDue());
      await new Promise((resolve) => setImmediate(resolve));
    }
    await applying;
    await Promise.all(attempts);
    await scheduler.applyRequests(); // one skipped because its message was being attempted
    const entry = await spool.read(id);
    // Either the attempt came first (delivered; the hold found nothing to hold) or the hold did.
    const said = relay.logs.some((l) => l.event === 'queue-held' && l.id === id);
    if (!sentTo(to)) held++;
    t.ok(sentTo(to) ? entry === undefined && !said : entry?.onHold !== undefined && said, `${wait} turns in: ${sentTo(to) ? 'delivered, and never said to be held' : 'held, and not sent'}`);
    t.equal(scheduler.size, held, 'the scheduler knows the messages left, and only those');
  }
});

t.test('requests wait in a folder of their own, so looking for them never reads the queued messages', async (t) => {
  const relay = await relayWithQueue(t);
  const { spool } = relay.relay;
  const id = await queued(relay, 'deferred@example.com');
  const entry = await spool.read(id);
  if (!entry) throw new Error(`${id} is not queued`);
  await spool.update({ ...entry, nextAttemptAt: Date.now() + 60_000 });
  await new QueueRequests(spool.layout).leave(id, 'hold', 'console: desk');
  t.same(fs.readdirSync(path.join(relay.spoolDir, 'requests')), [`${id}.hold`], 'the request is in requests/');
  t.same(fs.readdirSync(path.join(relay.spoolDir, 'queue')).sort(), [`${id}.eml`, `${id}.json`], 'queue/ holds only the message');
  t.same(await new QueueRequests(spool.layout).pending(), [{ id, kind: 'hold', by: 'console: desk' }], 'and it is found there');
});

t.test('a request an older version left beside its message is moved to requests/ at start, and applied', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-requests-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const yaml = `delivery: { mode: queue, spool: { path: ${dir} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`;
  const first = await startTestRelay(yaml, {}, { manualScheduler: true });
  const id = await queued(first, 'older@example.com');
  const entry = await first.relay.spool.read(id);
  if (!entry) throw new Error(`${id} is not queued`);
  await first.relay.spool.update({ ...entry, nextAttemptAt: Date.now() + 60_000 });
  await first.relay.close(0);
  fs.writeFileSync(path.join(dir, 'queue', `${id}.hold`), 'tenant-relay queue (ops)', { mode: 0o600 });
  const second = await startTestRelay(yaml, {}, { manualScheduler: true });
  t.teardown(() => second.relay.close(0));
  t.ok((await second.relay.spool.read(id))?.onHold, 'held');
  t.same(fs.readdirSync(path.join(dir, 'queue')).sort(), [`${id}.eml`, `${id}.json`], 'gone from queue/');
  t.same(fs.readdirSync(path.join(dir, 'requests')), [], 'and applied from requests/');
  t.match(second.logs.find((l) => l.event === 'queue-held' && l.id === id), { by: 'tenant-relay queue (ops)' }, 'who asked is kept');
});
