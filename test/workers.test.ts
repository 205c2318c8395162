// `workers: N`: N processes share the listener, each with its own spool; the primary answers one /metrics
// and /readyz for all, restarts a worker that dies (its replacement delivers what it had accepted), and
// has the spools of workers no longer configured delivered.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { listeningPort, runCli, spawnCli } from './helpers/cli.js';
import { sendThrough } from './helpers/relay.js';
import { closedPort, type Received, startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-workers-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, workers: number, upstreamPort: number, spool: string, port = 0): string {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(
    file,
    `listen: [{ host: 127.0.0.1, port: ${port} }]
ops: { port: 0, token: workers-test-ops-token }
workers: ${workers}
delivery: { mode: queue, spool: { path: ${spool} }, retry: { minSeconds: 1, maxSeconds: 1, jitter: 0 } }
smarthost: { host: 127.0.0.1, port: ${upstreamPort}, tls: none, connectTimeoutSeconds: 1 }
`,
  );
  return file;
}

/** `tenant-relay serve` as a child the test ends; log() is what it has written to stderr so far. */
function serveProcess(t: Test, file: string) {
  const serve = spawnCli(['serve', '--config', file]);
  t.teardown(() => serve.child.kill('SIGKILL'));
  let stderr = '';
  serve.child.stderr?.on('data', (d) => {
    stderr += d;
  });
  return { ...serve, log: () => stderr };
}

const message = (i: number) => `From: <app@example.org>\r\nTo: x@example.com\r\nSubject: msg-${i}\r\n\r\nHello ${i}.\r\n`;
const subjects = (received: readonly Received[]) => new Set(received.map((r) => /Subject: (msg-\d+)/.exec(r.raw.toString())?.[1]));

t.test('two workers share a port (each its own socket, SO_REUSEPORT); one /metrics and one /readyz answer for both; SIGTERM stops all', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const serve = serveProcess(t, configFile('two', 2, upstream.port, path.join(dir, 'two-spool'), await closedPort()));
  const [port, opsPort] = await Promise.all([listeningPort(serve.child), listeningPort(serve.child, 'ops')]);
  for (let i = 0; i < 20; i++) await sendThrough(port, { from: 'app@example.org', to: 'x@example.com', raw: message(i) });
  t.ok(await until(() => upstream.received.length === 20), 'all twenty delivered');
  const ready = await fetch(`http://127.0.0.1:${opsPort}/readyz`);
  t.equal(ready.status, 200);
  t.match(await ready.json(), { ready: true, checks: { workers: '2 of 2 ready' } });
  const metrics = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`, { headers: { authorization: 'Bearer workers-test-ops-token' } })).text();
  t.match(metrics, /^tenant_relay_messages_accepted_total\{tenant="none",mode="queue"\} 20$/m, 'counted over both workers');
  t.match(metrics, /^tenant_relay_workers 2$/m);
  t.match(metrics, /^tenant_relay_ready 1$/m, 'ready is the least of the workers, not their sum');
  const traced = async () => {
    const res = await fetch(`http://127.0.0.1:${opsPort}/trace?rcpt=x@example.com`, { headers: { authorization: 'Bearer workers-test-ops-token' } });
    return ((await res.json()) as { messages: unknown[] }).messages.length;
  };
  let found = 0;
  for (let i = 0; i < 20 && found < 20; i++) {
    found = await traced();
    if (found < 20) await new Promise((r) => setTimeout(r, 250)); // the trace writes in 250 ms batches
  }
  t.equal(found, 20, "GET /trace on the primary finds every worker's messages");
  serve.child.kill('SIGTERM');
  const done = await serve.done;
  t.equal(done.code, 0);
  const queuedBy = new Set([...done.stderr.matchAll(/"worker":(\d),"event":"queued"/g)].map((m) => m[1]));
  t.same([...queuedBy].sort(), ['0', '1'], 'both workers took mail');
  t.ok(fs.existsSync(path.join(dir, 'two-spool', 'worker-1', 'journal')), 'worker 1 keeps its own spool');
});

t.test("a worker killed under load (port 0: the cluster's shared socket): a new one takes its place, and every 250-ed message is delivered", async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const serve = serveProcess(t, configFile('kill', 2, upstream.port, path.join(dir, 'kill-spool')));
  const port = await listeningPort(serve.child);
  const victim = Number(/"event":"worker-started","worker":1,"pid":(\d+)/.exec(serve.log())?.[1]);
  t.ok(victim > 0, 'the primary names its workers');
  const accepted: number[] = [];
  for (let i = 0; i < 60; i++) {
    if (i === 20) process.kill(victim, 'SIGKILL'); // a process this test started (through serve), by its pid
    try {
      // A session handed to the killed worker is never greeted: given up after 3 s, as an app would time out.
      const info = await sendThrough(port, { from: 'app@example.org', to: 'x@example.com', raw: message(i), greetingTimeoutMs: 3000 });
      if (/^250 /.test(info.response)) accepted.push(i);
    } catch {
      // A session on the killed worker: not 250-ed, the app retries it.
    }
  }
  t.ok(accepted.length >= 50, `${accepted.length} of 60 accepted`);
  t.ok(await until(() => accepted.every((i) => subjects(upstream.received).has(`msg-${i}`)), 20_000), 'every accepted message arrived');
  t.match(serve.log(), /"event":"worker-exited","worker":1,.*"signal":"SIGKILL"/);
  const afterExit = () => serve.log().slice(serve.log().indexOf('worker-exited'));
  t.ok(await until(() => /"event":"worker-started","worker":1,"pid":(?!\d+,"leftovers")/.test(afterExit())), 'worker 1 started again');
  serve.child.kill('SIGTERM');
  t.equal((await serve.done).code, 0);
});

t.test('fewer workers than before: the spools of the ones gone are delivered, and nothing is left', async (t) => {
  const spool = path.join(dir, 'shrink-spool');
  const down = await closedPort();
  const first = serveProcess(t, configFile('three', 3, down, spool));
  const port = await listeningPort(first.child);
  for (let i = 0; i < 12; i++) await sendThrough(port, { from: 'app@example.org', to: 'x@example.com', raw: message(i) });
  first.child.kill('SIGTERM');
  t.equal((await first.done).code, 0);
  t.ok(fs.readdirSync(path.join(spool, 'worker-2', 'queue')).length + fs.readdirSync(path.join(spool, 'worker-2', 'journal')).length > 0, 'worker 2 left mail in its spool');
  const listed = await runCli(['queue', 'list', '--json', '--config', path.join(dir, 'three.yaml')]);
  t.equal((JSON.parse(listed.stdout) as unknown[]).length, 12, 'tenant-relay queue lists the mail of every worker spool');

  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const second = serveProcess(t, configFile('one', 1, upstream.port, spool));
  await listeningPort(second.child);
  t.ok(await until(() => subjects(upstream.received).size === 12, 20_000), 'all twelve delivered by one process');
  second.child.kill('SIGTERM');
  t.equal((await second.done).code, 0);
});

t.test('the primary SIGKILLed: its workers end with it, and a relay started on the same spool delivers every 250-ed message', async (t) => {
  const spool = path.join(dir, 'orphan-spool');
  const down = await closedPort();
  const first = serveProcess(t, configFile('orphaned', 2, down, spool));
  const port = await listeningPort(first.child);
  for (let i = 0; i < 10; i++) await sendThrough(port, { from: 'app@example.org', to: 'x@example.com', raw: message(i) });
  const workerPids = [...first.log().matchAll(/"event":"worker-started","worker":\d,"pid":(\d+)/g)].map((m) => Number(m[1]));
  t.equal(workerPids.length, 2);
  first.child.kill('SIGKILL'); // the primary, which this test started
  await first.done;
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0); // signal 0: only asks whether it exists
      return true;
    } catch {
      return false;
    }
  };
  t.ok(await until(() => !workerPids.some(alive), 10_000), 'no worker outlives its primary');

  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const second = serveProcess(t, configFile('orphaned', 2, upstream.port, spool));
  await listeningPort(second.child);
  t.ok(await until(() => subjects(upstream.received).size === 10, 20_000), 'all ten delivered by the next relay');
  second.child.kill('SIGTERM');
  t.equal((await second.done).code, 0);
});

t.test('SIGHUP to the primary reloads every worker', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const serve = serveProcess(t, configFile('reload', 2, upstream.port, path.join(dir, 'reload-spool')));
  await listeningPort(serve.child);
  serve.child.kill('SIGHUP');
  const reloadedBy = () => new Set([...serve.log().matchAll(/"worker":(\d),"event":"config-reloaded","why":"SIGHUP"/g)].map((m) => m[1]));
  t.ok(await until(() => reloadedBy().size === 2), 'both workers reloaded');
  serve.child.kill('SIGTERM');
  t.equal((await serve.done).code, 0);
});

t.test("with workers, the primary takes the provider's events and the bounces by mail, and the worker that sent each message links it; each is counted once", async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const postmark = { user: 'postmark-hook', password: 'webhook-password-0123456789' };
  const file = path.join(dir, 'events.yaml');
  fs.writeFileSync(
    file,
    `listen: [{ host: 127.0.0.1, port: 0 }]
ops: { port: 0, token: workers-test-ops-token }
workers: 2
delivery: { mode: queue, spool: { path: ${path.join(dir, 'events-spool')} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
bounces: { domain: bounces.platform.test, signingKey: "bounce-signing-key-of-the-test-0123456789", listen: { host: 127.0.0.1, port: 0 } }
providerEvents:
  postmark: { username: ${postmark.user}, password: ${postmark.password}, signingKey: postmark-link-signing-key-0123456789abcdef, smtpHosts: [127.0.0.1] }
tenants:
  - { id: acme, match: { domains: [acme.test] } }
`,
  );
  const serve = serveProcess(t, file);
  const [port, opsPort] = await Promise.all([listeningPort(serve.child), listeningPort(serve.child, 'ops')]);
  const bouncePort = Number(/"event":"listening".*"bounces":(\d+)/.exec(serve.log())?.[1]);
  t.ok(bouncePort > 0, 'the primary listens for the bounce domain');
  const count = 8;
  for (let i = 0; i < count; i++) await sendThrough(port, { from: 'app@acme.test', to: `user${i}@example.com`, raw: message(i) });
  t.ok(await until(() => upstream.received.length === count), 'all delivered');
  await until(() => new Set([...serve.log().matchAll(/"worker":(\d),"event":"queued"/g)].map((m) => m[1])).size === 2, 1000);
  t.equal(new Set([...serve.log().matchAll(/"worker":(\d),"event":"queued"/g)].map((m) => m[1])).size, 2, 'both workers took mail');
  await new Promise((r) => setTimeout(r, 300)); // the trace writes in 250 ms batches

  const auth = { authorization: `Basic ${Buffer.from(`${postmark.user}:${postmark.password}`).toString('base64')}`, 'content-type': 'application/json' };
  const linked: number[] = [];
  for (let i = 0; i < count - 1; i++) {
    const raw = upstream.received.find((r) => r.rcptTo.includes(`user${i}@example.com`))?.raw.toString() ?? '';
    const link = /^X-PM-Metadata-tenant-relay: (\S+)\r$/m.exec(raw)?.[1] ?? '';
    const body = { RecordType: 'Bounce', ID: 1000 + i, Type: 'HardBounce', Email: `user${i}@example.com`, Details: '550 5.1.1 no such user', BouncedAt: new Date().toISOString(), Metadata: { 'tenant-relay': link } };
    const res = await fetch(`http://127.0.0.1:${opsPort}/provider-events/postmark`, { method: 'POST', headers: auth, body: JSON.stringify(body) });
    linked.push(((await res.json()) as { matched: number }).matched);
  }
  t.same(linked, Array(count - 1).fill(1), "every event linked, whichever worker's trace holds the message");

  // The last message's bounce comes back by mail, to its own return path.
  const last = upstream.received.find((r) => r.rcptTo.includes(`user${count - 1}@example.com`));
  const dsn = `From: MAILER-DAEMON@mx.example.com\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; user${count - 1}@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n--b1--\r\n`;
  await sendThrough(bouncePort, { from: '', to: last?.mailFrom ?? '', raw: dsn });
  t.ok(await until(() => /"event":"bounce-report".*"linked":1/.test(serve.log()), 3000), 'the DSN is linked by the worker that sent the message');

  const metrics = async () => (await fetch(`http://127.0.0.1:${opsPort}/metrics`, { headers: { authorization: 'Bearer workers-test-ops-token' } })).text();
  t.ok(await until(async () => /tenant_relay_provider_events_total\{provider="postmark",result="matched"\} 7\b/.test(await metrics()), 3000), 'counted once each');
  t.match(await metrics(), /tenant_relay_provider_events_total\{provider="bounce-mail",result="matched"\} 1\b/);
  t.notMatch(await metrics(), /result="unmatched"/, 'no worker counted the others\' messages as unmatched');

  // Every address is suppressed for the tenant, in the file both workers read.
  const before = upstream.received.length;
  for (let i = 0; i < 4; i++) await sendThrough(port, { from: 'app@acme.test', to: [`user${i}@example.com`, `user${count - 1}@example.com`, 'fresh@example.com'], raw: message(100 + i) });
  t.ok(await until(() => upstream.received.length === before + 4), 'the next messages went');
  t.same(new Set(upstream.received.slice(before).flatMap((r) => r.rcptTo)), new Set(['fresh@example.com']), 'to the unsuppressed address only');
  serve.child.kill('SIGTERM');
  t.equal((await serve.done).code, 0);
});
