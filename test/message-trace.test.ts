// The message trace: `tenant-relay trace` (and GET /trace on the ops listener) finds a recent message by
// its queue id, Message-ID, a recipient or its tenant, and shows what happened: accepted, each attempt
// with the upstream's reply, delivered, deferred, bounced. It forgets after the retention, and keeps to
// its size.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { DeliveryEvent } from '../relay/reporting/delivery-events.js';
import { TraceStore } from '../relay/reporting/trace-store.js';
import { runCli } from './helpers/cli.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { queueIdOf, startUpstream } from './helpers/upstream.js';

const DAY = 86_400_000;

t.test('trace finds a message by queue id, Message-ID, recipient and tenant, after delivery, deferral and bounce', async (t) => {
  const upstream = await startUpstream({ rcpt: (a) => (a.startsWith('busy') ? [450, '4.2.1 Mailbox busy'] : a.startsWith('gone') ? [550, '5.1.1 User unknown'] : undefined) });
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} } }
ops: { port: 0, token: ops-token-0123456789 }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
tenants: [{ id: acme, match: { domains: [acme.test] } }]
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  const raw = 'From: <app@acme.test>\r\nTo: x@example.com\r\nMessage-ID: <reset-7@app.acme.test>\r\nSubject: Reset\r\n\r\nHello.\r\n';
  const info = await sendThrough(relay.port, { from: 'app@acme.test', to: ['ok@example.com', 'busy@example.com', 'gone@example.com'], raw });
  const id = /queued as (\w+)/.exec(info.response)?.[1] ?? '';
  await relay.relay.scheduler.runDue(Date.now());

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-trace-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, `delivery: { spool: { path: ${relay.spoolDir} } }\nsmarthost: { host: 127.0.0.1, tls: none }\n`);
  const trace = (...args: string[]) => runCli(['trace', '--config', file, ...args]);
  // The relay writes its trace a quarter of a second at a time.
  let shown = '';
  for (let i = 0; i < 150 && !/1 delivered, 1 deferred, 1 bounced/.test(shown); i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    if (fs.existsSync(path.join(relay.spoolDir, 'trace.db'))) shown = (await trace(id)).stdout;
  }

  t.match(shown, new RegExp(`^${id}  1 delivered, 1 deferred, 1 bounced  accepted \\d{4}-`, 'm'));
  t.match(shown, /tenant acme, queue, from <app@acme\.test>, Message-ID <reset-7@app\.acme\.test>, \d+ bytes/);
  t.match(shown, /accepted {2}<ok@example\.com> {2}250 2\.0\.0 Ok: queued as /);
  t.match(shown, new RegExp(`delivered <ok@example\\.com>  via smarthost, attempt 1  upstream said: 250 2\\.0\\.0 Ok: queued as ${queueIdOf(0)} \\(its queue id ${queueIdOf(0)}\\)`));
  t.match(shown, /deferred {2}<busy@example\.com> {2}via smarthost, attempt 1 {2}upstream said: 450 4\.2\.1 Mailbox busy; next attempt \d{4}-/);
  t.match(shown, /bounced {3}<gone@example\.com> {2}via smarthost, attempt 1 {2}upstream said: 550 5\.1\.1 User unknown/);

  for (const key of [['--message-id', '<reset-7@app.acme.test>'], ['--rcpt', 'BUSY@example.com'], ['--tenant', 'acme']]) {
    const r = await trace(...key);
    t.equal(r.code, 0, key.join(' '));
    t.match(r.stdout, new RegExp(`^${id}  `, 'm'), `found by ${key[0]}`);
  }
  const json = JSON.parse((await trace('--rcpt', 'gone@example.com', '--json')).stdout) as { messages: { queueId: string; events: { type: string }[] }[] };
  t.match(json.messages, [{ queueId: id, events: [{ type: 'accepted' }, { type: 'accepted' }, { type: 'accepted' }, {}, {}, {}] }]);
  const none = await trace('--rcpt', 'nobody@example.com');
  t.equal(none.code, 1);
  t.match(none.stdout, /no message found/);
  t.equal((await trace()).code, 2, 'no key: a usage error');

  // The same at the ops listener, for the platform's admin pages, behind ops.token.
  const ops = (p: string, token?: string) => fetch(`http://127.0.0.1:${relay.relay.opsPort}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  t.equal((await ops(`/trace/${id}`)).status, 401);
  const byId = (await (await ops(`/trace/${id}`, 'ops-token-0123456789')).json()) as { messages: { queueId: string }[] };
  t.match(byId.messages, [{ queueId: id }]);
  const byRcpt = (await (await ops('/trace?rcpt=ok%40example.com', 'ops-token-0123456789')).json()) as { messages: { messageId: string }[] };
  t.match(byRcpt.messages, [{ messageId: '<reset-7@app.acme.test>' }]);
  t.equal((await ops('/trace', 'ops-token-0123456789')).status, 400, 'no key: 400');
});

const event = (queueId: string, at: number, recipient = 'x@example.com'): DeliveryEvent => ({
  id: `${queueId}.1.0`,
  type: 'delivered',
  time: new Date(at).toISOString(),
  queueId,
  messageId: `<${queueId}@example.org>`,
  tenant: 'acme',
  mode: 'queue',
  from: 'app@acme.test',
  recipient,
  upstream: 'smarthost',
  attempt: 1,
  acceptedAt: new Date(at).toISOString(),
  reply: '250 2.0.0 Ok: delivered via smarthost',
  upstreamReply: { code: 250, enhanced: '2.0.0', text: 'Ok: queued as ABC', queueId: 'ABC' },
  nextAttemptAt: null,
  dsn: false,
});

t.test('the trace forgets a message once its last event is older than the retention (fake clock)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-trace-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  let now = Date.parse('2026-12-01T00:00:00Z');
  const store = new TraceStore(path.join(dir, 'trace.db'), { retentionMs: 7 * DAY, maxBytes: 64 * 1024 * 1024, now: () => now, maintainEveryMs: 0 });
  t.teardown(() => store.close());
  store.events([event('old', now)]);
  now += 3 * DAY;
  store.events([event('recent', now)]);
  now += 5 * DAY; // "old" is 8 days old, "recent" 5
  store.maintain();
  t.same(store.find({ queueId: 'old' }), [], 'past the retention: gone');
  t.match(store.find({ recipient: 'x@example.com' }), [{ queueId: 'recent', events: [{ upstreamQueueId: 'ABC' }] }]);
  now += 3 * DAY;
  store.maintain();
  t.same(store.find({ tenant: 'acme' }), []);
});

t.test('the trace keeps to its size on disk: the oldest messages go first', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-trace-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'trace.db');
  const start = Date.now() - DAY;
  const store = new TraceStore(file, { retentionMs: 7 * DAY, maxBytes: 256 * 1024, maintainEveryMs: 0 });
  t.teardown(() => store.close());
  for (let i = 0; i < 3000; i++) store.events([event(`m${i}`, start + i * 1000, `r${i}@example.com`)]);
  store.maintain();
  t.ok(fs.statSync(file).size <= 320 * 1024, `the file is ${fs.statSync(file).size} bytes`);
  t.same(store.find({ queueId: 'm0' }), [], 'the oldest went');
  t.match(store.find({ queueId: 'm2999' }), [{ queueId: 'm2999' }], 'the newest stayed');
});
