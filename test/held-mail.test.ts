// Mail held by a sending limit says why and until when, everywhere an operator or the platform looks:
// `queue list` and `queue show`, the trace, a `held` delivery event (once per hold, not at every look),
// and the drain's last log line. A limit holds mail; it never looks like mail that is merely due.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runCli } from './helpers/cli.js';
import { sendThrough, startFileRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';
import { startReceiver } from './helpers/webhook-receiver.js';
import { until } from './helpers/wait.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const receiver = await startReceiver(SECRET);
const upstream = await startUpstream();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-held-'));
const yaml = `delivery: { mode: queue, spool: { path: ${dir} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
events: { webhook: { url: "${receiver.url}", secret: "${SECRET}" } }
tenants:
  - { id: acme, match: { domains: [acme.test] }, limits: { messagesPerMinute: 1 } }
`;
const relay = await startFileRelay(dir, yaml);
const { configFile } = relay;
t.teardown(async () => {
  await relay.close();
  await upstream.close();
  await receiver.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const ids: string[] = [];
for (const to of ['one@example.com', 'two@example.com', 'three@example.com']) {
  ids.push(/queued as (\w+)/.exec((await sendThrough(relay.port, { from: 'app@acme.test', to })).response)?.[1] ?? '');
}
const start = Date.now();
await relay.relay.scheduler.runDue(start);
const held = ids.filter((id) => !upstream.received.some((m) => m.rcptTo[0] === `${['one', 'two', 'three'][ids.indexOf(id)]}@example.com`));

t.test('one goes, two are held by the tenant limit', async (t) => {
  t.equal(upstream.received.length, 1);
  t.equal(held.length, 2);
});

t.test('queue list and show say the message is held, by what, and when it is looked at again', async (t) => {
  // The relay writes its holds beside the spool within two seconds.
  let list = '';
  for (let i = 0; i < 50 && !/held for/.test(list); i++) {
    await new Promise((r) => setTimeout(r, 100));
    list = (await runCli(['queue', 'list', '--config', configFile])).stdout;
  }
  for (const id of held) {
    t.match(list, new RegExp(`^${id} .*attempts=0  held for \\d+s, looked at again in \\d+s\\n    held: tenant acme is at its messagesPerMinute limit \\(until \\d{4}-`, 'm'));
  }
  t.notMatch(list, /due now/, 'held mail is not shown as due');
  const json = JSON.parse((await runCli(['queue', 'list', '--json', '--config', configFile])).stdout) as { id: string; hold?: { reason: string; until: number } }[];
  t.match(json.find((e) => e.id === held[0])?.hold, { reason: 'tenant acme is at its messagesPerMinute limit', until: Number });
  t.match((await runCli(['queue', 'show', held[0] ?? '', '--config', configFile])).stdout, /held: tenant acme is at its messagesPerMinute limit/);
});

t.test('a held event per recipient, once per hold: looking again within the hour tells nothing new', async (t) => {
  t.ok(await until(() => receiver.events.filter((e) => e.type === 'held').length === 2));
  for (let s = 5; s <= 50; s += 5) await relay.relay.scheduler.runDue(start + s * 1000);
  await new Promise((r) => setTimeout(r, 500));
  const events = receiver.events.filter((e) => e.type === 'held');
  t.equal(events.length, 2, `${events.length} held events after ten looks`);
  t.same(events.map((e) => e.queueId).sort(), [...held].sort());
  t.match(events[0], { tenant: 'acme', reply: /^451 4\.7\.1 Held: tenant acme is at its messagesPerMinute limit/, nextAttemptAt: /^\d{4}-/ });
});

t.test('the trace shows the hold with its reason', async (t) => {
  const r = await runCli(['trace', held[0] ?? '', '--config', configFile]);
  t.match(r.stdout, /held +<\w+@example\.com> {2}451 4\.7\.1 Held: tenant acme is at its messagesPerMinute limit; it goes when the limit allows; looked at again \d{4}-/);
});

t.test('a drain that ends with held mail says what holds it', async (t) => {
  const status = await relay.relay.drain(300);
  t.equal(status.queued, 2);
  t.match(
    relay.logs.find((l) => l.event === 'drained'),
    { queued: 2, held: { 'tenant acme is at its messagesPerMinute limit': 2 }, msg: 'mail is left in the spool' },
  );
  relay.relay.undrain();
});

t.test('held mail goes when the limit allows; then it is no longer shown as held', async (t) => {
  await relay.relay.scheduler.runDue(start + 61_000);
  await relay.relay.scheduler.runDue(start + 122_000);
  t.equal(upstream.received.length, 3, 'all three delivered, one a minute');
  relay.relay.scheduler.holds.flush();
  t.equal((await runCli(['queue', 'list', '--config', configFile])).stdout.trim(), 'the queue is empty');
});
