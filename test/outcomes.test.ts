// What became of each message reaches its watchers (log lines, metrics, trace, events, send-test) in
// batches, in the order it happened; a watcher that fails never stops the others or the mail; and
// whoever reads what they watched (a scrape, a trace search, a send-test's outcome, the relay stopping)
// sees every outcome so far, however long the batch.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { parseConfig } from '../config/load.js';
import { Replies } from '../relay/errors.js';
import { writeLogLines } from '../relay/observe/log-lines.js';
import { Outcomes } from '../relay/observe/outcomes.js';
import { SEND_TEST_HEADER } from '../relay/observe/send-tests.js';
import { startRelay } from '../relay/runtime/start-relay.js';
import { queuedId, sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _e, done) => (lines.push(...String(chunk).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)), done()) }));
  return { lines, logger };
}

const tx = { session: 's1', id: 'm1', tenant: 'acme', client: '127.0.0.1', from: 'app@example.org', rcpt: 1 };
const queued = { mode: 'queue', tx, reply: { ...Replies.localError, code: 250 }, reason: 'test', warnings: [], ms: 1 } as const;
const settled = (id: string) => ({ message: { id, tenant: 'acme', mode: 'queue', mailFrom: 'app@example.org', acceptedAt: 0 }, attempt: 1, state: 'delivered', recipients: 1 }) as const;

t.test('batched outcomes wait for their batch, then come in order; one whose watcher fails is logged in its place and the rest still come', async (t) => {
  const { lines, logger } = capture();
  const outcomes = new Outcomes(logger, { batchMs: 60_000 });
  writeLogLines(outcomes, logger);
  outcomes.emit('answered', queued);
  // A malformed outcome (no reply): its line cannot be made.
  outcomes.emit('answered', { ...queued, reply: undefined as never });
  outcomes.emit('settled', settled('m1'));
  t.same(lines, [], 'nothing is told as the outcomes come');
  outcomes.flush();
  t.same(
    lines.map((l) => l.event),
    ['queued', 'observer-failed', 'delivered'],
    "flushed: each line in the order of its outcome, the failed watcher's in its place",
  );
});

t.test('a batch is told by itself soon after its first outcome', async (t) => {
  const { lines, logger } = capture();
  const outcomes = new Outcomes(logger, { batchMs: 20 });
  writeLogLines(outcomes, logger);
  outcomes.emit('settled', settled('m2'));
  t.same(lines, []);
  t.ok(await until(() => lines.some((l) => l.id === 'm2'), 2000));
});

t.test('a watcher that reads (and so flushes) while a batch is told does not reorder it', async (t) => {
  const { logger } = capture();
  const outcomes = new Outcomes(logger, { batchMs: 60_000 });
  const seen: string[] = [];
  outcomes.on('settled', (e) => {
    seen.push(e.message.id);
    if (e.message.id === 'a') {
      outcomes.emit('settled', settled('c'));
      outcomes.flush();
    }
  });
  outcomes.emit('settled', settled('a'));
  outcomes.emit('settled', settled('b'));
  outcomes.flush();
  t.same(seen, ['a', 'b', 'c']);
});

t.test('without a batch, outcomes are told at once', async (t) => {
  const { logger } = capture();
  const outcomes = new Outcomes(logger);
  const seen: string[] = [];
  outcomes.on('settled', (e) => seen.push(e.message.id));
  outcomes.emit('settled', settled('now'));
  t.same(seen, ['now']);
});

t.test('with a batch longer than the test, a send-test read, a scrape, a trace search and the log see every outcome so far', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(`delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`, {}, { outcomeBatchMs: 600_000 });
  t.teardown(() => relay.close());
  const token = 'outcomes-batch-test-0001';
  const raw = `${SEND_TEST_HEADER}: ${token}\r\nFrom: <app@example.org>\r\nTo: <someone@example.com>\r\nSubject: batched\r\n\r\nbody\r\n`;
  const id = queuedId((await sendThrough(relay.port, { from: 'app@example.org', to: 'someone@example.com', raw })).response);
  t.ok(await until(() => upstream.received.length === 1 && relay.relay.scheduler.size === 0, 5000), 'delivered, and out of the queue');
  t.match(await relay.relay.sendTest(token), { final: true, recipients: [{ rcpt: 'someone@example.com', status: 'sent' }] }, "the send-test's outcome is there");
  const text = await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();
  t.match(text, /tenant_relay_messages_accepted_total\{tenant="none",mode="queue"\} 1/, 'the scrape counts the accepted message');
  t.match(text, /tenant_relay_recipients_delivered_total\{tenant="none",upstream="smarthost"\} 1/, 'and its delivery');
  t.match(relay.relay.trace?.find({ queueId: id }, 1)[0], { queueId: id, status: 'delivered' }, 'the trace finds it delivered');
  t.ok(relay.logs.some((l) => l.id === id && l.event === 'delivered'), 'the log has its line');
});

t.test('a stop tells what waits: the lines of a delivered message are written before the relay is gone', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-outcomes-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { lines, logger } = capture();
  const config = parseConfig(`listen: [{ host: 127.0.0.1, port: 0 }]\nops: { enabled: false }\ndelivery: { mode: queue, spool: { path: ${dir} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`, 'test.yaml', {});
  const relay = await startRelay(config, { logger, outcomeBatchMs: 600_000 });
  const id = queuedId((await sendThrough(relay.addresses[0]?.port ?? 0, { from: 'app@example.org', to: 'someone@example.com' })).response);
  t.ok(await until(() => upstream.received.length === 1 && relay.scheduler.size === 0, 5000), 'delivered, and out of the queue');
  t.notOk(lines.some((l) => l.id === id), 'its lines wait for their batch');
  await relay.close(0);
  t.same(
    lines.filter((l) => l.id === id).map((l) => l.event),
    ['queued', 'delivered'],
    'written at the stop',
  );
});
