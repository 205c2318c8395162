// Queue mode's promise: 250 means the message and its envelope are on disk. Every failure on the way
// there is a 4xx with nothing queued, and the relay keeps serving.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import type { SpoolIo } from '../relay/queue/spool.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { openDataSession, openRawSession } from './helpers/smtp-client.js';
import { startUpstream } from './helpers/upstream.js';

const upstream = await startUpstream();
t.teardown(() => upstream.close());

const queueYaml = (extra = '') => `
delivery: { mode: queue, spool: { path: \${SPOOL}${extra} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`;
const files = (dir: string, area: string) => fs.readdirSync(path.join(dir, area)).sort();

t.test('250 comes after the message and its state are in queue/, whole', async (t) => {
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const info = await sendThrough(relay.port, { from: 'a@example.com', to: ['b@example.com', 'c@example.com'] });
  const id = /^250 2\.0\.0 Ok: queued as ([a-z0-9]+)$/.exec(info.response)?.[1] ?? '';
  t.ok(id, info.response);
  t.same(files(relay.spoolDir, 'queue'), [`${id}.eml`, `${id}.json`]);
  t.same(files(relay.spoolDir, 'tmp'), [], 'nothing left in tmp/');
  const state = JSON.parse(fs.readFileSync(path.join(relay.spoolDir, 'queue', `${id}.json`), 'utf8'));
  const eml = fs.readFileSync(path.join(relay.spoolDir, 'queue', `${id}.eml`));
  t.match(state, { id, mailFrom: 'a@example.com', size: eml.length, attempts: 0, recipients: [{ address: 'b@example.com', status: 'pending' }, { address: 'c@example.com', status: 'pending' }] });
  t.match(eml.toString(), new RegExp(`^Received: from .*\\r\\n\\tby tenant-relay\\.localhost \\(tenant-relay\\) with ESMTP id ${id}; `));
  t.equal(upstream.received.length, 0, 'not delivered yet: the scheduler is held');
});

t.test('a message over 1 MiB streams through tmp/ into queue/ whole, and is delivered byte-identical', async (t) => {
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const line = 'A line of a large export, then a dot line:\r\n.\r\n';
  const raw = Buffer.from(`From: <a@example.com>\r\nTo: b@example.com\r\nSubject: big\r\n\r\n${line.repeat(Math.ceil((2 * 1024 * 1024) / line.length))}`);
  const info = await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', raw });
  const id = /queued as ([a-z0-9]+)$/.exec(info.response)?.[1] ?? '';
  t.same(files(relay.spoolDir, 'tmp'), [], 'the staged copy is removed');
  const eml = fs.readFileSync(path.join(relay.spoolDir, 'queue', `${id}.eml`));
  t.ok(eml.subarray(eml.indexOf('From: <a@example.com>')).equals(raw), 'spooled whole');
  await relay.relay.scheduler.runDue();
  const got = upstream.received.at(-1)?.raw ?? Buffer.alloc(0);
  t.ok(got.subarray(got.indexOf('From: <a@example.com>')).equals(raw), 'delivered whole');
});

/** A spool whose fsync or rename fails after `okCalls` successful calls. */
function failingIo(op: 'fsync' | 'rename', okCalls = 0): SpoolIo & { calls: number } {
  const io = {
    calls: 0,
    fsync: async (f: fsp.FileHandle) => {
      if (op === 'fsync' && io.calls++ >= okCalls) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      await f.sync();
    },
    rename: async (a: string, b: string) => {
      if (op === 'rename' && io.calls++ >= okCalls) throw Object.assign(new Error('ENOSPC: no space left on device, rename'), { code: 'ENOSPC' });
      await fsp.rename(a, b);
    },
  };
  return io;
}

for (const [op, okCalls, where] of [
  ['fsync', 0, 'the message file fsync'],
  ['fsync', 1, 'the state file fsync'],
  ['fsync', 2, 'the queue directory fsync'],
  // The message file is written in queue/ directly: the state rename is the one that makes it queued.
  ['rename', 0, 'the state rename'],
] as const) {
  t.test(`a failure at ${where} is 451 4.3.0, nothing is queued, and the next message goes through`, async (t) => {
    const io = failingIo(op, okCalls);
    const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true, spoolIo: io });
    t.teardown(() => relay.close());
    const reply = await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' }));
    t.match(reply, /^451 4\.3\.0 /);
    t.same(files(relay.spoolDir, 'queue'), [], 'nothing in queue/');
    t.same(files(relay.spoolDir, 'tmp'), [], 'temp files removed');
    io.calls = -1_000; // the disk recovers
    t.match((await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' })).response, /^250 2\.0\.0 Ok: queued as /);
  });
}

t.test('an unwritable spool is 451 4.3.0 and the relay stays up', async (t) => {
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  // tmp/ replaced by a plain file: every write fails (ENOTDIR), even for root.
  fs.rmSync(path.join(relay.spoolDir, 'tmp'), { recursive: true });
  fs.writeFileSync(path.join(relay.spoolDir, 'tmp'), '');
  t.match(await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' })), /^451 4\.3\.0 /);
  t.same(files(relay.spoolDir, 'queue'), []);
  fs.rmSync(path.join(relay.spoolDir, 'tmp'));
  fs.mkdirSync(path.join(relay.spoolDir, 'tmp'));
  t.match((await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' })).response, /^250 /, 'recovers with the disk');
});

t.test('free space under the floor is 452 4.3.1 at MAIL FROM', async (t) => {
  const relay = await startTestRelay(queueYaml(', minFreeMegabytes: 1000000000'), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const s = await openRawSession(relay.port);
  t.teardown(() => s.close());
  await s.send('EHLO client.test\r\n');
  t.match(await s.send('MAIL FROM:<a@example.com>\r\n'), /^452 4\.3\.1 Insufficient system storage/);
});

t.test('a client that disconnects mid-DATA leaves nothing in the spool', async (t) => {
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const { session: s } = await openDataSession(relay.port);
  const pending = s.send('Subject: cut\r\n\r\nhalf a mess');
  await new Promise((r) => setTimeout(r, 100));
  s.close();
  await pending;
  await new Promise((r) => setTimeout(r, 100));
  t.same(files(relay.spoolDir, 'queue'), []);
  t.same(files(relay.spoolDir, 'tmp'), []);
  t.match((await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' })).response, /^250 /);
});

t.test('data over the size limit is 552 5.3.4 and leaves nothing behind', async (t) => {
  const relay = await startTestRelay(`maxMessageSizeBytes: 2048\n${queueYaml()}`, {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const reply = await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', raw: `Subject: big\r\n\r\n${'x'.repeat(5000)}\r\n` }));
  t.match(reply, /^552 5\.3\.4/);
  t.same(files(relay.spoolDir, 'queue'), []);
  t.same(files(relay.spoolDir, 'tmp'), []);
});

t.test('concurrent commits share directory fsyncs (group commit), and every one is on disk', async (t) => {
  let fsyncs = 0;
  const io: SpoolIo = {
    fsync: async (f) => {
      fsyncs++;
      await f.sync();
    },
    rename: (a, b) => fsp.rename(a, b),
  };
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true, spoolIo: io });
  t.teardown(() => relay.close());
  const n = 20;
  const replies = await Promise.all(Array.from({ length: n }, (_, i) => sendThrough(relay.port, { from: 'a@example.com', to: `r${i}@example.com` })));
  t.equal(replies.filter((r) => /^250 /.test(r.response)).length, n);
  t.equal(files(relay.spoolDir, 'queue').length, 2 * n);
  // Two file fsyncs per message are unavoidable; the directory fsyncs are what is shared.
  t.ok(fsyncs < 3 * n, `${fsyncs} fsyncs for ${n} messages (one each would be ${3 * n})`);
});

t.test('a tenant in passthrough mode is forwarded in session while the rest queue', async (t) => {
  const relay = await startTestRelay(
    `${queueYaml()}tenants:\n  - { id: live, match: { domains: [live.test] }, delivery: { mode: passthrough } }\n`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  t.match((await sendThrough(relay.port, { from: 'a@live.test', to: 'b@example.com' })).response, /^250 2\.0\.0 Ok: delivered via smarthost$/);
  t.match((await sendThrough(relay.port, { from: 'a@queued.test', to: 'b@example.com' })).response, /^250 2\.0\.0 Ok: queued as /);
});
