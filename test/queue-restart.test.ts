// After a restart the spool is the truth: deferred mail keeps its attempts and retry time, unfinished
// commits are dropped (they were never acknowledged), and a damaged entry is moved aside without
// stopping the rest.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const refusal: { reply?: [number, string] } = {};
const upstream = await startUpstream({ rcpt: () => refusal.reply });
t.teardown(() => upstream.close());

function spoolDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-restart-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const yamlFor = (dir: string) => `
delivery: { mode: queue, spool: { path: ${dir} }, retry: { minSeconds: 300, jitter: 0 } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`;

t.test('deferred mail keeps its attempt count and next-try time across a restart', async (t) => {
  const dir = spoolDir();
  refusal.reply = [451, '4.3.0 not now'];
  const first = await startTestRelay(yamlFor(dir), {}, { manualScheduler: true });
  const id = /queued as (\w+)/.exec((await sendThrough(first.port, { from: 'a@example.com', to: 'b@example.com' })).response)?.[1] ?? '';
  await first.relay.scheduler.runDue();
  const before = await first.relay.spool.read(id);
  await first.relay.close(0);

  refusal.reply = undefined;
  const second = await startTestRelay(yamlFor(dir), {}, { manualScheduler: true });
  t.teardown(() => second.close());
  t.same(await second.relay.spool.read(id), before, 'state unchanged by the restart');
  t.match(before, { attempts: 1 });
  await second.relay.scheduler.runDue((before?.nextAttemptAt ?? 0) - 1000);
  t.equal(upstream.received.filter((m) => m.rcptTo.includes('b@example.com')).length, 0, 'not before its time');
  await second.relay.scheduler.runDue(before?.nextAttemptAt);
  t.equal(upstream.received.filter((m) => m.rcptTo.includes('b@example.com')).length, 1, 'delivered when due');
});

t.test('damaged entries are moved to corrupt/ and reported; the others are still delivered', async (t) => {
  const dir = spoolDir();
  for (const area of ['tmp', 'queue']) fs.mkdirSync(path.join(dir, area), { recursive: true });
  const q = (name: string) => path.join(dir, 'queue', name);
  const message = 'From: a@example.com\r\nSubject: survivor\r\n\r\nstill here\r\n';
  const state = (id: string, size: number, extra: object = {}) =>
    JSON.stringify({ v: 1, id, createdAt: Date.now(), mailFrom: 'a@example.com', tenant: null, size, recipients: [{ address: `${id}@example.com`, status: 'pending' }], attempts: 0, nextAttemptAt: 0, ...extra });

  fs.writeFileSync(q('good.eml'), message);
  fs.writeFileSync(q('good.json'), state('good', message.length));
  fs.writeFileSync(q('empty.eml'), message);
  fs.writeFileSync(q('empty.json'), '');
  fs.writeFileSync(q('torn.eml'), message.slice(0, 20));
  fs.writeFileSync(q('torn.json'), state('torn', message.length));
  fs.writeFileSync(q('nomsg.json'), state('nomsg', message.length));
  fs.writeFileSync(q('badmeta.eml'), message);
  fs.writeFileSync(q('badmeta.json'), JSON.stringify({ v: 1, id: 'badmeta', recipients: 'everyone' }));
  fs.writeFileSync(q('cut.eml'), message);
  fs.writeFileSync(q('cut.json'), state('cut', message.length).slice(0, 40));
  // An unfinished commit (message renamed, state not yet) and a half-written temp file: never acknowledged.
  fs.writeFileSync(q('unacked.eml'), message);
  fs.writeFileSync(path.join(dir, 'tmp', 'partial.raw'), 'From: a');

  const relay = await startTestRelay(yamlFor(dir), {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const corrupt = relay.logs.filter((l) => l.event === 'queue-corrupt');
  t.same(corrupt.map((l) => l.id).sort(), ['badmeta', 'cut', 'empty', 'nomsg', 'torn']);
  t.match(corrupt.find((l) => l.id === 'torn'), { reason: `message file is 20 bytes, ${message.length} were accepted` });
  t.same(fs.readdirSync(path.join(dir, 'corrupt')).sort(), ['badmeta.eml', 'badmeta.json', 'cut.eml', 'cut.json', 'empty.eml', 'empty.json', 'nomsg.json', 'torn.eml', 'torn.json']);
  t.same(fs.readdirSync(path.join(dir, 'tmp')), [], 'temp files cleared');
  t.notOk(fs.existsSync(q('unacked.eml')), 'the unfinished commit is dropped');

  await relay.relay.scheduler.runDue();
  t.match(upstream.received.at(-1), { rcptTo: ['good@example.com'] });
  t.match(upstream.received.at(-1)?.raw.toString(), /Subject: survivor\r\n\r\nstill here\r\n$/);
});

const received = (rcpt: string) => upstream.received.filter((m) => m.rcptTo.includes(rcpt)).length;

t.test('journaled mail survives a restart and goes out once; mail delivered before it is not sent again', async (t) => {
  const dir = spoolDir();
  const first = await startTestRelay(yamlFor(dir), {}, { manualScheduler: true });
  await sendThrough(first.port, { from: 'a@example.com', to: 'sent-before@example.com' });
  await first.relay.scheduler.runDue();
  await sendThrough(first.port, { from: 'a@example.com', to: 'waiting@example.com' });
  await first.relay.close(0);
  t.equal(received('sent-before@example.com'), 1);
  t.equal(received('waiting@example.com'), 0);

  const second = await startTestRelay(yamlFor(dir), {}, { manualScheduler: true });
  t.teardown(() => second.close());
  await second.relay.scheduler.runDue();
  t.equal(received('waiting@example.com'), 1, 'the message accepted before the restart is delivered');
  t.equal(received('sent-before@example.com'), 1, 'the delivered one is not sent twice');
  t.equal(second.relay.scheduler.size, 0);
});

t.test('a torn or damaged record ends a journal segment: what came before it is delivered, the rest was never acknowledged', async (t) => {
  // A running relay grows a segment's file ahead of its records with zeros; a crash leaves them there.
  const zeros = Buffer.alloc(64 * 1024);
  const dataEnd = (bytes: Buffer) => {
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    return end;
  };
  for (const [damage, how, ignored] of [
    ['torn', (bytes: Buffer) => bytes.subarray(0, bytes.length - 7), 7],
    ['damaged', (bytes: Buffer) => Buffer.concat([bytes.subarray(0, bytes.length - 9), Buffer.from('XXXXXXXXX')]), 0],
    ['torn-before-the-zeros', (bytes: Buffer) => Buffer.concat([bytes.subarray(0, bytes.length - 7), zeros]), 7],
  ] as const) {
    const dir = spoolDir();
    const first = await startTestRelay(yamlFor(dir), {}, { manualScheduler: true });
    await sendThrough(first.port, { from: 'a@example.com', to: `kept-${damage}@example.com` });
    const before = dataEnd(fs.readFileSync(path.join(dir, 'journal', fs.readdirSync(path.join(dir, 'journal'))[0] ?? '')));
    await sendThrough(first.port, { from: 'a@example.com', to: `cut-${damage}@example.com` });
    await first.relay.close(0);
    // As if the machine stopped while the second record was written (or its bytes rotted on disk).
    const segment = path.join(dir, 'journal', fs.readdirSync(path.join(dir, 'journal'))[0] ?? '');
    const bytes = fs.readFileSync(segment);
    t.equal(dataEnd(bytes), bytes.length, 'a clean stop leaves the segment exactly its records');
    t.ok(bytes.length > before, 'the second record follows the first in the same segment');
    fs.writeFileSync(segment, how(bytes));

    const second = await startTestRelay(yamlFor(dir), {}, { manualScheduler: true });
    await second.relay.scheduler.runDue();
    t.equal(received(`kept-${damage}@example.com`), 1, `${damage}: the whole record before it is delivered`);
    t.equal(received(`cut-${damage}@example.com`), 0, `${damage}: the bad record is not`);
    t.match(second.logs.find((l) => l.event === 'journal-tail-discarded'), { bytes: bytes.length - before - ignored }, `${damage}: the ignored bytes are logged, and not the zeros`);
    await second.close();
  }
});

t.test("a crash leaves the zeros a journal segment is grown by after its records: every record is delivered and nothing is called damaged", async (t) => {
  const dir = spoolDir();
  const first = await startTestRelay(yamlFor(dir), {}, { manualScheduler: true });
  await sendThrough(first.port, { from: 'a@example.com', to: 'one-of-two@example.com' });
  await sendThrough(first.port, { from: 'a@example.com', to: 'two-of-two@example.com' });
  const segment = path.join(dir, 'journal', fs.readdirSync(path.join(dir, 'journal'))[0] ?? '');
  // Read while the relay runs: the file is longer than its records, as a kill -9 would leave it.
  const running = fs.readFileSync(segment);
  t.equal(running.subarray(-1024).every((b) => b === 0), true, 'the file is grown ahead of its records');
  await first.relay.close(0);
  fs.writeFileSync(segment, running);

  const second = await startTestRelay(yamlFor(dir), {}, { manualScheduler: true });
  await second.relay.scheduler.runDue();
  t.equal(received('one-of-two@example.com'), 1);
  t.equal(received('two-of-two@example.com'), 1);
  t.equal(second.logs.find((l) => l.event === 'journal-tail-discarded'), undefined, 'no tail is reported discarded');
  await second.close();
});
