// `tenant-relay queue` on a live spool: list and show read it; retry, delete, hold and release leave
// requests that the running relay applies, so the command never writes a file the scheduler is writing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runCli, spawnCli } from './helpers/cli.js';
import { sendThrough, startFileRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const refusal: { reply?: [number, string] } = { reply: [451, '4.3.0 greylisted'] };
const upstream = await startUpstream({ rcpt: () => refusal.reply });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-queue-cmd-'));
const yaml = `delivery: { mode: queue, spool: { path: ${dir} }, retry: { minSeconds: 300, jitter: 0 } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`;
const relay = await startFileRelay(dir, yaml);
const { configFile } = relay;
t.teardown(async () => {
  await relay.close();
  await upstream.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const queue = (...args: string[]) => runCli(['queue', ...args, '--config', configFile]);

const ids: string[] = [];
for (const to of ['one@example.com', 'two@example.com']) {
  ids.push(/queued as (\w+)/.exec((await sendThrough(relay.port, { from: 'app@example.com', to })).response)?.[1] ?? '');
}
await relay.relay.scheduler.runDue();

t.test('list shows every queued message, as text and as JSON', async (t) => {
  const text = await queue('list');
  t.equal(text.code, 0);
  for (const id of ids) t.match(text.stdout, new RegExp(`^${id} .*<app@example\\.com>.*pending=1 sent=0 failed=0  attempts=1  next try in \\d+m\\n    last: 451 4\\.4\\.0 `, 'm'));
  const json = JSON.parse((await queue('list', '--json')).stdout);
  t.same(json.map((e: { id: string }) => e.id).sort(), [...ids].sort());
});

t.test('list as a real process, beside the running relay', async (t) => {
  const r = await spawnCli(['queue', 'list', '--config', configFile]).done;
  t.equal(r.code, 0, r.stderr);
  for (const id of ids) t.match(r.stdout, new RegExp(`^${id} `, 'm'));
});

t.test('show prints the envelope, each recipient and the headers', async (t) => {
  const r = await queue('show', ids[0] ?? '');
  t.equal(r.code, 0);
  t.match(r.stdout, /recipients:\n {2}pending <one@example\.com> {2}451 4\.4\.0 /);
  t.match(r.stdout, /\nSubject: test/);
  t.equal((await queue('show', 'nosuchid')).code, 1);
});

t.test('retry makes a message due now; the running relay applies it and delivers', async (t) => {
  refusal.reply = undefined;
  t.match((await queue('retry', ids[0] ?? '')).stdout, /retry requested for 1 message/);
  await relay.relay.scheduler.applyRequests();
  await relay.relay.scheduler.runDue();
  t.same(upstream.received.map((m) => m.rcptTo), [['one@example.com']]);
  t.match((await queue('list')).stdout, new RegExp(`^${ids[1]} `));
  t.notMatch((await queue('list')).stdout, new RegExp(ids[0] ?? ''));
});

t.test('delete removes a message without delivering it', async (t) => {
  t.equal((await queue('delete', ids[1] ?? '')).code, 0);
  await relay.relay.scheduler.applyRequests();
  t.equal((await queue('list')).stdout.trim(), 'the queue is empty');
  await relay.relay.scheduler.runDue();
  t.equal(upstream.received.length, 1, 'not delivered');
});

t.test('hold keeps a message from being attempted until release; each is logged with who asked', async (t) => {
  const id = /queued as (\w+)/.exec((await sendThrough(relay.port, { from: 'app@example.com', to: 'three@example.com' })).response)?.[1] ?? '';
  const before = upstream.received.length;
  t.match((await queue('hold', id)).stdout, /hold requested for 1 message/);
  await relay.relay.scheduler.applyRequests();
  t.match((await queue('list')).stdout, new RegExp(`^${id} .*on hold \\(by hand\\) for \\d+s, until released`, 'm'));
  t.match(relay.logs.find((l) => l.event === 'queue-held'), { id, by: /^tenant-relay queue \(/ });
  await relay.relay.scheduler.runDue(Date.now() + 3_600_000);
  t.equal(upstream.received.length, before, 'not attempted, however late it gets');
  await queue('release', id ?? '');
  await relay.relay.scheduler.applyRequests();
  t.notMatch((await queue('list')).stdout, /on hold/);
  t.match(relay.logs.find((l) => l.event === 'queue-released'), { id });
  await relay.relay.scheduler.runDue();
  t.equal(upstream.received.length, before + 1, 'delivered once released');
});

t.test('retry --all and unknown actions', async (t) => {
  t.match((await queue('retry', '--all')).stdout, /retry requested for 0 message/);
  t.equal((await queue('frobnicate')).code, 2);
});

t.test('a message that bounced after a deferral shows how it failed, not the earlier deferral', async (t) => {
  refusal.reply = [450, '4.3.0 try later'];
  const id = /queued as (\w+)/.exec((await sendThrough(relay.port, { from: 'app@example.com', to: 'gone@example.com' })).response)?.[1] ?? '';
  await relay.relay.scheduler.runDue();
  t.match((await queue('list')).stdout, new RegExp(`^${id} .*\\n    last: 451 4\\.4\\.0 .*450 4\\.3\\.0`, 'm'));
  refusal.reply = [550, '5.1.1 User unknown'];
  await queue('retry', id);
  await relay.relay.scheduler.applyRequests();
  await relay.relay.scheduler.runDue();
  const failed = (await queue('list', '--failed')).stdout;
  t.match(failed, new RegExp(`^${id} .*failed=1 .*failed\\n    last: 550 5\\.1\\.1 User unknown`, 'm'));
  t.notMatch(failed, /4\.3\.0/);
  t.match((await queue('show', id)).stdout, /last: 550 5\.1\.1 User unknown/);
  refusal.reply = undefined;
});
