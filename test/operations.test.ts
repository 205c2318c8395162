// What ops and admins rely on: hot reload that never leaves the relay without a valid config, metrics
// that reflect real traffic, readiness that tells the truth about the spool, a graceful stop that loses
// nothing, and logs without secrets.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { loadConfigFile } from '../config/load.js';
import { hashPassword } from '../relay/inbound/passwords.js';
import { Spool } from '../relay/queue/spool.js';
import { startRelay } from '../relay/runtime/start-relay.js';
import { replyOf, sendThrough } from './helpers/relay.js';
import { openDataSession } from './helpers/smtp-client.js';
import { startUpstream } from './helpers/upstream.js';

const first = await startUpstream();
const second = await startUpstream({ tls: 'none', users: { relay: 'upstream-password' }, allowInsecureAuth: true });
t.teardown(() => Promise.all([first.close(), second.close()]));
const appHash = await hashPassword('app-password');

interface Running {
  relay: Awaited<ReturnType<typeof startRelay>>;
  file: string;
  dir: string;
  logs: Record<string, unknown>[];
  rawLogs: () => string;
}

async function start(t: Test, body: (dir: string) => string, watch = false): Promise<Running> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-ops-'));
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, body(dir));
  let raw = '';
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      raw += String(chunk);
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const relay = await startRelay(loadConfigFile(file, { UPSTREAM_PASSWORD: 'upstream-password' }), { logger: pino({ level: 'debug' }, sink), configFile: file, watchConfig: watch });
  t.teardown(async () => {
    await relay.close(0);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { relay, file, dir, logs, rawLogs: () => raw };
}

const yaml = (dir: string, port: number, extra = '') => `
listen: [{ host: 127.0.0.1, port: 0 }]
ops: { port: 0 }
delivery: { mode: passthrough, spool: { path: ${dir}/spool } }
inbound: { users: [{ username: app, passwordHash: "${appHash}" }] }
smarthost: { host: 127.0.0.1, port: ${port}, tls: none }
${extra}`;

/** The smarthost line with the second upstream's AUTH (cleartext is fine on loopback, when said so). */
const withCredentials = (text: string, password: string) =>
  text.replace(`port: ${second.port}, tls: none }`, `port: ${second.port}, tls: none, username: relay, password: ${password}, allowInsecureAuth: true }`);

t.test('reload with a good file: new transactions use the new routing', async (t) => {
  const r = await start(t, (dir) => yaml(dir, first.port));
  const port = r.relay.addresses[0]?.port ?? 0;
  await sendThrough(port, { from: 'a@example.com', to: 'b@example.com' });
  t.equal(first.received.length, 1);
  fs.writeFileSync(r.file, withCredentials(yaml(r.dir, second.port), 'upstream-password'));
  t.match(r.relay.reload('test'), { ok: true, restartNeeded: [] });
  await sendThrough(port, { from: 'a@example.com', to: 'b@example.com' });
  t.match(second.received.at(-1), { user: 'relay' }, 'through the new smarthost, with its credentials');
  t.ok(r.logs.some((l) => l.event === 'config-reloaded'));
});

t.test('reload with a bad file: the error is logged with file:line, and the running config stays', async (t) => {
  const r = await start(t, (dir) => yaml(dir, first.port));
  const before = first.received.length;
  fs.writeFileSync(r.file, `${yaml(r.dir, first.port)}\nsmarthost: { host: 127.0.0.1, port: 99999, tls: none }\n`);
  const result = r.relay.reload('test');
  t.match(result, { ok: false, errors: [/relay\.yaml:\d+:\d+: /] });
  t.match(r.logs.find((l) => l.event === 'config-reload-failed'), { errors: [/relay\.yaml:\d+:\d+: /] });
  await sendThrough(r.relay.addresses[0]?.port ?? 0, { from: 'a@example.com', to: 'b@example.com' });
  t.equal(first.received.length, before + 1, 'still delivering with the old snapshot');
  const metrics = await r.relay.metrics.registry.metrics();
  t.match(metrics, /tenant_relay_config_reloads_total\{result="failure"\} 1/);
});

t.test('a file replaced atomically (write aside, rename) is picked up by the watcher', async (t) => {
  const r = await start(t, (dir) => yaml(dir, first.port), true);
  // The watcher takes its first look asynchronously; an edit comes later than that in real life.
  await new Promise((res) => setTimeout(res, 800));
  const aside = `${r.file}.new`;
  fs.writeFileSync(aside, yaml(r.dir, first.port, 'tenants: [{ id: late, match: { domains: [late.test] } }]'));
  fs.renameSync(aside, r.file);
  for (let i = 0; i < 60 && r.relay.config().tenants.length === 0; i++) await new Promise((res) => setTimeout(res, 100));
  t.equal(r.relay.config().tenants[0]?.id, 'late');
  t.match(r.logs.find((l) => l.event === 'config-reloaded'), { why: 'file changed' });
});

t.test('a listener change is reported as needing a restart', async (t) => {
  const r = await start(t, (dir) => yaml(dir, first.port));
  fs.writeFileSync(r.file, yaml(r.dir, first.port).replace('port: 0 }]', 'port: 0, tls: none }, { host: 127.0.0.2, port: 0 }]'));
  t.match(r.relay.reload('test'), { ok: true, restartNeeded: ['listen'] });
});

t.test('/metrics is Prometheus text that counts real traffic', async (t) => {
  const r = await start(t, (dir) => yaml(dir, first.port));
  const port = r.relay.addresses[0]?.port ?? 0;
  await sendThrough(port, { from: 'a@example.com', to: ['b@example.com', 'c@example.com'] });
  await replyOf(sendThrough(port, { from: 'a@example.com', to: 'b@example.com', auth: { user: 'app', pass: 'wrong' } }));
  const res = await fetch(`http://127.0.0.1:${r.relay.opsPort}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  // Every sample line is "name{labels} value"; every metric has HELP and TYPE lines.
  for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) t.match(line, /^[a-z_:][a-z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+|NaN|\+Inf$/i);
  t.match(text, /tenant_relay_messages_accepted_total\{tenant="none",mode="passthrough"\} 1/);
  t.match(text, /tenant_relay_recipients_delivered_total\{tenant="none",upstream="smarthost"\} 2/);
  t.match(text, /tenant_relay_replies_refused_total\{reply="auth-failed",code="535 5\.7\.8"\} 1/);
  t.match(text, /tenant_relay_upstream_send_seconds_count\{via="smarthost"\} 1/);
  t.match(text, /# TYPE tenant_relay_queue_depth gauge\ntenant_relay_queue_depth 0/);
});

t.test('/healthz is ok; /readyz fails when the spool is unwritable, and recovers', async (t) => {
  const r = await start(t, (dir) => yaml(dir, first.port));
  const get = (p: string) => fetch(`http://127.0.0.1:${r.relay.opsPort}${p}`);
  t.equal((await get('/healthz')).status, 200);
  t.equal((await get('/readyz')).status, 200);
  const tmp = path.join(r.dir, 'spool', 'tmp');
  fs.rmSync(tmp, { recursive: true });
  fs.writeFileSync(tmp, 'not a directory');
  // The spool probe is cached for 2 s: ask until the answer changes (bounded).
  const readyzUntil = async (status: number) => {
    let res = await get('/readyz');
    for (let i = 0; i < 40 && res.status !== status; i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await get('/readyz');
    }
    return res;
  };
  const broken = await readyzUntil(503);
  t.equal(broken.status, 503);
  t.match(await broken.json(), { ready: false, checks: { spoolWritable: false, listening: true } });
  fs.rmSync(tmp);
  fs.mkdirSync(tmp);
  t.equal((await readyzUntil(200)).status, 200);
});

t.test('SIGTERM-style close during DATA: the message is either 250 and delivered, or refused; never lost', async (t) => {
  const r = await start(t, (dir) => yaml(dir, first.port).replace('mode: passthrough', 'mode: queue'));
  const port = r.relay.addresses[0]?.port ?? 0;
  const { session, dataReply } = await openDataSession(port, 'a@example.com', 'drain@example.com');
  t.match(dataReply, /^354 /);
  session.write('Subject: draining\r\n\r\nhalf of the body, ');
  const closing = r.relay.close(5000);
  await new Promise((res) => setTimeout(res, 100));
  const lateClient = await replyOf(sendThrough(port, { from: 'a@example.com', to: 'b@example.com' }));
  t.match(lateClient, /^(421 4\.3\.2 |.*ECONNREFUSED)/, 'a new client is turned away');
  const reply = await session.send('the rest.\r\n.\r\n');
  await closing;
  t.match(reply, /^250 2\.0\.0 Ok: queued as /, 'the message in DATA was allowed to finish');
  const queued = await new Spool(path.join(r.dir, 'spool')).list();
  const delivered = first.received.filter((m) => m.rcptTo.includes('drain@example.com')).length;
  t.equal(queued.length + delivered, 1, 'on disk for the next start, or already delivered');
});

t.test('no password appears in the logs, whatever happened', async (t) => {
  const r = await start(t, (dir) => withCredentials(yaml(dir, second.port), '"${UPSTREAM_PASSWORD}"'));
  const port = r.relay.addresses[0]?.port ?? 0;
  await sendThrough(port, { from: 'a@example.com', to: 'b@example.com', auth: { user: 'app', pass: 'app-password' } });
  await replyOf(sendThrough(port, { from: 'a@example.com', to: 'b@example.com', auth: { user: 'app', pass: 'guess-password' } }));
  fs.writeFileSync(r.file, 'smarthost: { host: x, tls: none, username: relay, password: upstream-password }\n');
  r.relay.reload('test');
  const logs = r.rawLogs();
  t.ok(logs.length > 0);
  for (const secret of ['upstream-password', 'app-password', 'guess-password', appHash]) t.notOk(logs.includes(secret), `${secret.slice(0, 12)}… not logged`);
});
