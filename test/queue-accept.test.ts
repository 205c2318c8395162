// Queue mode's promise: 250 means the message and its envelope are on disk. Every failure on the way
// there is a 4xx with nothing queued, and the relay keeps serving.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { readJournalBytes } from '../relay/queue/journal.js';
import { Spool, type SpoolIo } from '../relay/queue/spool.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { openDataSession, openRawSession } from './helpers/smtp-client.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const upstream = await startUpstream();
t.teardown(() => upstream.close());

const queueYaml = (extra = '') => `
delivery: { mode: queue, spool: { path: \${SPOOL}${extra} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`;
const files = (dir: string, area: string) => fs.readdirSync(path.join(dir, area)).sort();
/** What `tenant-relay queue list` sees: the journal and queue/. */
const queued = async (dir: string) => new Spool(dir).list();
const bigMessage = () => {
  // Long lines with a dot line after each kilobyte: dot-stuffed on the wire both ways.
  const line = `A line of a large export ${'x'.repeat(1000)}\r\n.\r\n`;
  return Buffer.from(`From: <a@example.com>\r\nTo: b@example.com\r\nSubject: big\r\n\r\n${line.repeat(Math.ceil((2 * 1024 * 1024) / line.length))}`);
};

t.test('250 comes after the message and its state are in the journal, whole, with one file for all messages', async (t) => {
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const info = await sendThrough(relay.port, { from: 'a@example.com', to: ['b@example.com', 'c@example.com'] });
  const id = /^250 2\.0\.0 Ok: queued as ([a-z0-9]+)$/.exec(info.response)?.[1] ?? '';
  t.ok(id, info.response);
  await sendThrough(relay.port, { from: 'a@example.com', to: 'd@example.com' });
  t.same(files(relay.spoolDir, 'queue'), [], 'no files of its own: a message in memory is journaled');
  t.same(files(relay.spoolDir, 'tmp'), [], 'nothing left in tmp/');
  t.equal(files(relay.spoolDir, 'journal').length, 1, 'both messages in one segment');
  const listing = (await queued(relay.spoolDir)).find((l) => l.id === id);
  t.match(listing?.entry, { id, mailFrom: 'a@example.com', attempts: 0, recipients: [{ address: 'b@example.com', status: 'pending' }, { address: 'c@example.com', status: 'pending' }] });
  t.equal(listing?.journal?.length, listing?.entry.size, 'the recorded size is the bytes journaled');
  t.match(listing && (await new Spool(relay.spoolDir).headerOf(listing)).toString('latin1'), new RegExp(`^Received: from .*\\r\\n\\tby tenant-relay\\.localhost \\(tenant-relay\\) with ESMTP id ${id}; `));
  t.equal(upstream.received.length, 0, 'not delivered yet: the scheduler is held');
  await relay.relay.scheduler.runDue();
  t.ok(upstream.received.some((m) => m.raw.includes(`with ESMTP id ${id};`)), 'delivered from the journal');
  await relay.relay.spool.close();
  t.same(await queued(relay.spoolDir), [], 'delivered messages are marked done in the journal');
});

t.test('a message whose line ends were all CRLF is queued as checked (crlfOnly), a repaired one is not; both reach the upstream with CRLF only and their dots', async (t) => {
  const relay = await startTestRelay(`${queueYaml()}inbound: { bareLineEndings: normalize }\n`, {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  // As written on the wire by a raw client (nodemailer would repair the bare LF itself): leading dots doubled.
  const clean = 'From: <a@example.com>\r\nSubject: clean\r\n\r\n..dot first\r\nplain\r\n';
  const bare = 'From: <a@example.com>\r\nSubject: bare\r\n\r\n..dot first\nbare LF\r\n';
  const ids: string[] = [];
  for (const data of [clean, bare]) {
    const { session } = await openDataSession(relay.port);
    ids.push(/queued as ([a-z0-9]+)/.exec(await session.send(`${data}.\r\n`))?.[1] ?? '');
    session.close();
  }
  const listed = await queued(relay.spoolDir);
  t.equal(listed.find((l) => l.id === ids[0])?.entry.crlfOnly, true, 'clean: checked at intake');
  t.equal(listed.find((l) => l.id === ids[1])?.entry.crlfOnly, undefined, 'repaired: not marked, checked again on the way out');
  const before = upstream.received.length;
  await relay.relay.scheduler.runDue();
  const bodies = upstream.received.slice(before).map((m) => m.raw.toString('latin1'));
  t.equal(bodies.length, 2);
  t.ok(bodies.some((b) => b.endsWith('\r\n\r\n.dot first\r\nplain\r\n')), 'the clean one as written: its leading dot stuffed and unstuffed');
  t.ok(bodies.some((b) => b.endsWith('\r\n\r\n.dot first\r\nbare LF\r\n')), 'the repaired one with CRLF');
  t.notOk(bodies.some((b) => /\r(?!\n)|(?<!\r)\n/.test(b)), 'no bare CR or LF upstream');
});

t.test('a message of a few hundred KB held in memory is journaled whole (its checksum read back) and delivered byte-identical', async (t) => {
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const line = `A line of a report ${'y'.repeat(200)}\r\n..\r\n`;
  const raw = Buffer.from(`From: <a@example.com>\r\nTo: b@example.com\r\nSubject: report\r\n\r\n${line.repeat(1500)}`);
  const info = await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', raw });
  const id = /queued as ([a-z0-9]+)$/.exec(info.response)?.[1] ?? '';
  t.same(files(relay.spoolDir, 'queue'), [], 'in memory: journaled, no files of its own');
  // Listed means its record was read back whole: the checksum over the parts matches the bytes on disk.
  const listing = (await queued(relay.spoolDir)).find((l) => l.id === id);
  t.equal(listing?.journal?.length, listing?.entry.size, 'the recorded size is the bytes journaled');
  const journaled = listing?.journal ? await readJournalBytes(listing.journal) : Buffer.alloc(0);
  t.ok(journaled.subarray(journaled.indexOf('From: <a@example.com>')).equals(raw), 'journaled whole');
  await relay.relay.scheduler.runDue();
  const got = upstream.received.at(-1)?.raw ?? Buffer.alloc(0);
  t.ok(got.subarray(got.indexOf('From: <a@example.com>')).equals(raw), 'delivered whole');
});

t.test('a message over 1 MiB streams through tmp/ into queue/ whole, and is delivered byte-identical', async (t) => {
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const raw = bigMessage();
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

for (const [op, okCalls, where, big] of [
  ['fsync', 0, 'the journal directory fsync (a new segment)', false],
  ['fsync', 1, 'the journal segment fsync', false],
  ['fsync', 0, 'the message file fsync of a large message', true],
  ['fsync', 1, 'the state file fsync of a large message', true],
  ['fsync', 2, 'the queue directory fsync of a large message', true],
  // The message file is written in queue/ directly: the state rename is the one that makes it queued.
  ['rename', 0, 'the state rename of a large message', true],
] as const) {
  t.test(`a failure at ${where} is 451 4.3.0, nothing is queued, and the next message goes through`, async (t) => {
    const io = failingIo(op, okCalls);
    const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true, spoolIo: io });
    t.teardown(() => relay.close());
    const send = () => sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', ...(big ? { raw: bigMessage() } : {}) });
    const reply = await replyOf(send());
    t.match(reply, /^451 4\.3\.0 /);
    t.same(files(relay.spoolDir, 'queue'), [], 'nothing in queue/');
    t.same(files(relay.spoolDir, 'tmp'), [], 'temp files removed');
    io.calls = -1_000; // the disk recovers
    const ok = await send();
    t.match(ok.response, /^250 2\.0\.0 Ok: queued as /);
    await relay.relay.spool.close();
    t.same((await queued(relay.spoolDir)).map((l) => `queued as ${l.id}`), [ok.response.slice('250 2.0.0 Ok: '.length)], 'only the message that heard 250 is queued');
  });
}

t.test('an unwritable spool is 451 4.3.0 and the relay stays up', async (t) => {
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  // tmp/ and journal/ replaced by plain files: every write fails (ENOTDIR), even for root.
  for (const area of ['tmp', 'journal']) {
    fs.rmSync(path.join(relay.spoolDir, area), { recursive: true });
    fs.writeFileSync(path.join(relay.spoolDir, area), '');
  }
  t.match(await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' })), /^451 4\.3\.0 /);
  t.match(await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', raw: bigMessage() })), /^451 4\.3\.0 /);
  t.same(files(relay.spoolDir, 'queue'), []);
  for (const area of ['tmp', 'journal']) {
    fs.rmSync(path.join(relay.spoolDir, area));
    fs.mkdirSync(path.join(relay.spoolDir, area));
  }
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

t.test('a client that disconnects in the middle of a message larger than memory leaves no temp file', async (t) => {
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const { session: s } = await openDataSession(relay.port);
  // Past the 1 MiB kept in memory: the message is on its way to a temp file when the client goes.
  s.write(`Subject: cut\r\n\r\n${`${'x'.repeat(998)}\r\n`.repeat(1500)}`);
  t.ok(await until(() => files(relay.spoolDir, 'tmp').length === 1, 5000), 'the message went to a temp file');
  s.close();
  t.ok(await until(() => files(relay.spoolDir, 'tmp').length === 0, 5000), 'and the temp file is gone');
  t.same(files(relay.spoolDir, 'queue'), []);
  t.match((await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', raw: bigMessage() })).response, /^250 /, 'the next large message goes through');
});

t.test('data over the size limit is 552 5.3.4 and leaves nothing behind', async (t) => {
  const relay = await startTestRelay(`maxMessageSizeBytes: 2048\n${queueYaml()}`, {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const reply = await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', raw: `Subject: big\r\n\r\n${'x'.repeat(5000)}\r\n` }));
  t.match(reply, /^552 5\.3\.4/);
  t.same(files(relay.spoolDir, 'queue'), []);
  t.same(files(relay.spoolDir, 'tmp'), []);
});

t.test('messages committed together share one journal fsync (group commit), and every one is on disk', async (t) => {
  let fsyncs = 0;
  const io: SpoolIo = {
    fsync: async (f) => {
      fsyncs++;
      // A slow disk: messages arriving during one fsync wait for the next, and share it.
      await new Promise((r) => setTimeout(r, 30));
      await f.sync();
    },
    rename: (a, b) => fsp.rename(a, b),
  };
  const relay = await startTestRelay(queueYaml(), {}, { manualScheduler: true, spoolIo: io });
  t.teardown(() => relay.close());
  const n = 20;
  const replies = await Promise.all(Array.from({ length: n }, (_, i) => sendThrough(relay.port, { from: 'a@example.com', to: `r${i}@example.com` })));
  t.equal(replies.filter((r) => /^250 /.test(r.response)).length, n);
  t.equal((await queued(relay.spoolDir)).length, n, 'all of them in the journal');
  t.ok(fsyncs <= n / 2, `${fsyncs} fsyncs for ${n} messages (one each would be ${n})`);
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
