// Scaling in without loss: `tenant-relay drain` (and SIGTERM with ops.drainSeconds) stops taking mail
// with 421 4.3.2, delivers what is queued (retries included) to a slow upstream, and says when the
// spool is empty or what is left.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { listeningPort, runCli, spawnCli } from './helpers/cli.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { openRawSession } from './helpers/smtp-client.js';
import { refusingPort, startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-drain-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const TOKEN = 'ops-token-0123456789';

t.test('drain: new mail gets 421 4.3.2, what is queued (a deferred message too) reaches a slow upstream, exit 0 when empty', async (t) => {
  let deferOnce = true;
  const upstream = await startUpstream({
    dataDelayMs: 200,
    rcpt: (a) => {
      if (a === 'later@example.com' && deferOnce) {
        deferOnce = false;
        return [451, '4.3.0 try later'];
      }
      return undefined;
    },
  });
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(`delivery: { mode: queue, spool: { path: \${SPOOL} } }\nops: { port: 0, token: ${TOKEN} }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`);
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'app@example.org', to: 'later@example.com' });
  // Deferred: its next attempt is minutes away.
  t.ok(await until(() => relay.logs.some((l) => l.event === 'deferred')));
  for (let i = 0; i < 5; i++) await sendThrough(relay.port, { from: 'app@example.org', to: `r${i}@example.com` });
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, `ops: { port: ${relay.relay.opsPort}, token: ${TOKEN} }\nsmarthost: { host: 127.0.0.1, tls: none }\n`);

  const draining = runCli(['drain', '--config', file, '--timeout-seconds', '20']);
  t.ok(await until(() => relay.relay.drainStatus().draining));
  const session = await openRawSession(relay.port);
  t.match(session.greeting, /^421 4\.3\.2 /, 'a new client is turned away');
  session.close();
  t.equal((await fetch(`http://127.0.0.1:${relay.relay.opsPort}/readyz`)).status, 503, 'not ready: the Service stops sending here');
  const r = await draining;
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /drained: the spool is empty/);
  t.equal(upstream.received.length, 6, 'everything queued was delivered, the deferred one included');
  t.equal(relay.relay.scheduler.size, 0);
});

t.test('drain: what cannot be delivered by the deadline is reported, exit 1', async (t) => {
  const relay = await startTestRelay(`delivery: { mode: queue, spool: { path: \${SPOOL} } }\nops: { port: 0, token: ${TOKEN} }\nsmarthost: { host: 127.0.0.1, port: ${await refusingPort()}, tls: none, connectTimeoutSeconds: 1 }\n`);
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'app@example.org', to: 'x@example.com' });
  const file = path.join(dir, 'dead.yaml');
  fs.writeFileSync(file, `ops: { port: ${relay.relay.opsPort}, token: ${TOKEN} }\nsmarthost: { host: 127.0.0.1, tls: none }\n`);
  const r = await runCli(['drain', '--config', file, '--timeout-seconds', '1.5']);
  t.equal(r.code, 1);
  t.match(r.stdout, /not drained in 1\.5 s: 1 message\(s\) left in the spool/);
  const noToken = path.join(dir, 'no-token.yaml');
  fs.writeFileSync(noToken, `ops: { port: ${relay.relay.opsPort} }\nsmarthost: { host: 127.0.0.1, tls: none }\n`);
  t.match((await runCli(['drain', '--config', noToken])).stderr, /needs a token with the drain scope in ops\.token or ops\.tokens/);
});

t.test('SIGTERM with ops.drainSeconds: the process delivers its queue before it exits 0', async (t) => {
  const upstream = await startUpstream({ dataDelayMs: 300 });
  t.teardown(() => upstream.close());
  const file = path.join(dir, 'sigterm.yaml');
  fs.writeFileSync(
    file,
    `listen: [{ host: 127.0.0.1, port: 0 }]
ops: { port: 0, drainSeconds: 30 }
delivery: { mode: queue, spool: { path: ${dir}/sigterm-spool }, maxConcurrentDeliveries: 1 }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none, maxConnections: 1 }
`,
  );
  const serve = spawnCli(['serve', '--config', file]);
  const port = await listeningPort(serve.child);
  for (let i = 0; i < 6; i++) await sendThrough(port, { from: 'app@example.org', to: `r${i}@example.com` });
  t.ok(upstream.received.length < 6, 'still delivering when the signal comes');
  serve.child.kill('SIGTERM');
  const done = await serve.done;
  t.equal(done.code, 0, done.stderr.slice(-2000));
  t.equal(upstream.received.length, 6, 'all six delivered before the process left');
  t.match(done.stderr, /"event":"drained","queued":0/);
});

t.test('a stop lets a delivery in flight finish within the grace period: delivered once, not left in the spool to go again', async (t) => {
  // The upstream has the whole message and answers its final dot a moment later.
  const upstream = await startUpstream({ dataDelayMs: 600 });
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(`delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`);
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'app@example.org', to: 'once@example.com' });
  t.ok(await until(() => relay.relay.scheduler.inFlight === 1), 'the delivery is under way');
  await relay.relay.close(5000);
  t.equal(upstream.received.length, 1, 'the upstream has it');
  t.same(await relay.relay.spool.list(), [], 'and the spool does not: the next start sends nothing again');
  t.ok(relay.logs.some((l) => l.event === 'delivered'), 'its 250 was heard');
});
