// No one batch, tenant or crash jams the delivery events of everyone: requests are capped in bytes and a
// 413 splits them; a batch the receiver keeps refusing is dead-lettered (kept, counted, listed, replayable)
// and the rest moves on; past the backlog cap single events go, from the tenants holding the most; and an
// event id names one event, also when an attempt is made again after its state failed to be recorded.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { SpoolIo } from '../relay/queue/spool.js';
import { runCli } from './helpers/cli.js';
import { sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';
import { verifySignature } from './helpers/webhook-receiver.js';
import { until } from './helpers/wait.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

interface Events {
  readonly url: string;
  readonly taken: Record<string, unknown>[];
  readonly bodies: number[];
  /** Answer each verified request: a status. */
  answer: (body: string, events: Record<string, unknown>[]) => number;
}

async function receiver(t: Test): Promise<Events> {
  const state: Events = { url: '', taken: [], bodies: [], answer: () => 200 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (!verifySignature(SECRET, req.headers, body)) return res.writeHead(401).end();
      const events = (JSON.parse(body) as { events: Record<string, unknown>[] }).events;
      const status = state.answer(body, events);
      if (status >= 200 && status < 300) {
        state.taken.push(...events);
        state.bodies.push(body.length);
      }
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return Object.assign(state, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events` });
}

async function relayFor(t: Test, events: Events, options: { webhook?: string; upstream?: Upstream; spoolIo?: SpoolIo; retry?: string } = {}): Promise<TestRelay> {
  const upstream = options.upstream ?? (await startUpstream());
  if (!options.upstream) t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} }${options.retry ?? ''} }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
events: { webhook: { url: "${events.url}", secret: "${SECRET}"${options.webhook ?? ''} } }
tenants:
  - { id: chatty, match: { domains: [chatty.test] } }
  - { id: quiet, match: { domains: [quiet.test] } }
`,
    {},
    { manualScheduler: true, ...(options.spoolIo ? { spoolIo: options.spoolIo } : {}) },
  );
  t.teardown(() => relay.close());
  return relay;
}

t.test('requests are capped in bytes, and a 413 splits the batch: every event arrives, none dropped', async (t) => {
  const events = await receiver(t);
  // The receiver takes at most 2 KB a request; the relay is told it may send 64 KB.
  events.answer = (body) => (body.length > 2048 ? 413 : 200);
  const relay = await relayFor(t, events, { webhook: ', maxBatchKilobytes: 64' });
  await sendThrough(relay.port, { from: 'app@chatty.test', to: Array.from({ length: 20 }, (_, i) => `r${i}@example.com`) });
  t.ok(await until(() => events.taken.length === 20, 10_000), 'all 20 accepted events arrived');
  t.ok(events.bodies.every((n) => n <= 2048), 'in requests the receiver takes');
  t.equal(relay.logs.filter((l) => l.event === 'webhook-events-dead-lettered').length, 0);
});

t.test('a batch refused with a 4xx again and again is dead-lettered; the rest goes on; the command lists and replays it', async (t) => {
  const events = await receiver(t);
  let fixed = false;
  events.answer = (_body, list) => (!fixed && list.some((e) => e.recipient === 'poison@example.com') ? 422 : 200);
  const relay = await relayFor(t, events, { webhook: ', maxBatchEvents: 1' });
  await sendThrough(relay.port, { from: 'app@quiet.test', to: 'poison@example.com' });
  await sendThrough(relay.port, { from: 'app@quiet.test', to: 'fine@example.com' });
  t.ok(await until(() => events.taken.some((e) => e.recipient === 'fine@example.com'), 60_000), 'the next event got through');
  t.match(relay.logs.find((l) => l.event === 'webhook-events-dead-lettered'), { webhook: 'platform', events: 1, reason: 'http-422' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-webhooks-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, `delivery: { spool: { path: ${relay.spoolDir} } }\nsmarthost: { host: 127.0.0.1, tls: none }\n`);
  // The receiver has the event a moment before the relay hears its 200 and moves the cursor past it.
  let listed = await runCli(['webhooks', '--config', file]);
  for (let i = 0; i < 50 && !/ 0 waiting/.test(listed.stdout); i++) {
    await new Promise((r) => setTimeout(r, 100));
    listed = await runCli(['webhooks', '--config', file]);
  }
  t.match(listed, { code: 0, stdout: /^platform: 0 waiting, 1 dead-lettered$/m });
  fixed = true;
  t.match(await runCli(['webhooks', 'replay', 'platform', '--config', file]), { code: 0, stdout: /1 dead-lettered event\(s\) handed back/ });
  await sendThrough(relay.port, { from: 'app@quiet.test', to: 'wake@example.com' }); // the sender looks again
  t.ok(await until(() => events.taken.some((e) => e.recipient === 'poison@example.com'), 10_000), 'the replayed event arrived');
});

t.test("past the backlog cap, single events go, oldest first, from the tenant holding the most: a quiet tenant's events stay", async (t) => {
  const events = await receiver(t);
  let down = true;
  events.answer = () => (down ? 503 : 200);
  const relay = await relayFor(t, events, { webhook: ', maxBacklogEvents: 20' });
  await sendThrough(relay.port, { from: 'app@quiet.test', to: ['q1@example.com', 'q2@example.com', 'q3@example.com'] });
  for (let i = 0; i < 30; i++) await sendThrough(relay.port, { from: 'app@chatty.test', to: `c${i}@example.com` });
  t.ok(relay.logs.some((l) => l.event === 'webhook-events-dropped'), 'some were dropped');
  down = false;
  await sendThrough(relay.port, { from: 'app@quiet.test', to: 'q4@example.com' });
  t.ok(await until(() => events.taken.some((e) => e.recipient === 'q4@example.com'), 30_000));
  const quiet = events.taken.filter((e) => e.tenant === 'quiet').map((e) => e.recipient);
  t.same(quiet, ['q1@example.com', 'q2@example.com', 'q3@example.com', 'q4@example.com'], "every one of the quiet tenant's events arrived");
  const chatty = events.taken.filter((e) => e.tenant === 'chatty').map((e) => Number(String(e.recipient).slice(1, -'@example.com'.length)));
  t.ok(chatty.length < 30 && chatty.length >= 14, `the chatty tenant kept ${chatty.length} of its 30`);
  t.same(chatty, [...chatty].sort((a, b) => a - b), 'in order');
  t.equal(chatty.at(-1), 29, 'its newest kept: its oldest went first');
});

t.test('an attempt made again after its state failed to be written gets new event ids: no id names two events', async (t) => {
  const events = await receiver(t);
  const upstream = await startUpstream({ rcpt: (a) => (a.startsWith('later') ? [451, '4.2.0 try later'] : undefined) });
  t.teardown(() => upstream.close());
  let failRenames = 0;
  const io: SpoolIo = {
    fsync: (f) => f.sync(),
    // The state of the first deferral cannot be renamed into place: like a crash right after the events.
    rename: async (from, to) => {
      if (failRenames > 0 && to.endsWith('.json')) {
        failRenames--;
        throw new Error('EIO: the disk said no');
      }
      await fs.promises.rename(from, to);
    },
  };
  const relay = await relayFor(t, events, { upstream, spoolIo: io, retry: ', retry: { minSeconds: 1, maxSeconds: 1, jitter: 0 }' });
  await sendThrough(relay.port, { from: 'app@quiet.test', to: ['now@example.com', 'later@example.com'] });
  failRenames = 1;
  const now = Date.now();
  await relay.relay.scheduler.runDue(now);
  await relay.relay.scheduler.runDue(now + 2000);
  await relay.relay.scheduler.runDue(now + 5000);
  t.ok(await until(() => events.taken.filter((e) => e.type !== 'accepted').length >= 3, 10_000));
  const byId = new Map<string, string>();
  const clashes: string[] = [];
  for (const e of events.taken) {
    const text = JSON.stringify(e);
    const seen = byId.get(String(e.id));
    if (seen !== undefined && seen !== text) clashes.push(String(e.id));
    byId.set(String(e.id), text);
  }
  t.same(clashes, [], 'no id was given to two different events');
});
