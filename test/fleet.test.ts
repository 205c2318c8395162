// A fleet under load, the way it will be checked: three relay processes (real `tenant-relay serve`
// children) share one tenant limit through a real redis-server; while they deliver, Redis is killed and
// one relay is SIGKILLed and started again on its spool. The limit holds while Redis is there, and every
// message a relay answered 250 arrives.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { listeningPort, spawnCli } from './helpers/cli.js';
import { needRedis, startRedis } from './helpers/redis.js';
import { sendThrough } from './helpers/relay.js';
import { type Received, startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-fleet-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const PER_MINUTE = 60;
// 66 in all: the minute's 60 at once, the other 6 once the first leave the 60 s window (no 60 s holds more).
const PER_RELAY = 22;

const message = (i: number) => `From: <app@acme.test>\r\nTo: x@example.com\r\nSubject: msg-${i}\r\n\r\nHello ${i}.\r\n`;
const subjects = (received: readonly Received[]) => new Set(received.map((r) => /Subject: (msg-\d+)/.exec(r.raw.toString())?.[1]));

t.test('three relay processes share one limit; Redis and a relay killed mid-run; every 250-ed message arrives', needRedis, async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());

  const configOf = (n: number) => {
    const file = path.join(dir, `relay-${n}.yaml`);
    fs.writeFileSync(
      file,
      `listen: [{ host: 127.0.0.1, port: 0 }]
ops: { port: 0 }
delivery: { mode: queue, spool: { path: ${path.join(dir, `spool-${n}`)} }, retry: { minSeconds: 1, maxSeconds: 1, jitter: 0 } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
limits: { store: { redis: { url: "${redis.url}", timeoutMilliseconds: 200, signingKey: "shared-signing-key-of-the-test-fleet-0123" } } }
tenants:
  - { id: acme, match: { domains: [acme.test] }, limits: { messagesPerMinute: ${PER_MINUTE} } }
`,
    );
    return file;
  };
  const start = async (n: number) => {
    const serve = spawnCli(['serve', '--config', configOf(n)]);
    t.teardown(() => serve.child.kill('SIGKILL'));
    return { serve, port: await listeningPort(serve.child) };
  };
  const relays = [await start(0), await start(1), await start(2)];
  const [first, , third] = relays;

  const began = Date.now();
  const accepted: number[] = [];
  for (let i = 0; i < 3 * PER_RELAY; i++) {
    const info = await sendThrough(relays[i % 3]?.port ?? 0, { from: 'app@acme.test', to: 'x@example.com', raw: message(i) });
    if (/^250 /.test(info.response)) accepted.push(i);
  }
  t.equal(accepted.length, 3 * PER_RELAY, 'all accepted: the limit holds mail in the spools, it refuses nothing');
  t.ok(await until(() => upstream.received.length >= PER_MINUTE, 10_000), "the minute's budget went out");
  t.ok(Date.now() - began < 55_000 && upstream.received.length <= PER_MINUTE, `${upstream.received.length} delivered by three relays in the first minute, no more than the one budget`);

  await redis.kill();
  const victim = relays[1];
  victim?.serve.child.kill('SIGKILL'); // a relay this test started, by its own handle
  await victim?.serve.done;
  const second = await start(1);

  t.ok(await until(() => accepted.every((i) => subjects(upstream.received).has(`msg-${i}`)), 100_000), 'every accepted message arrived, with Redis gone and a relay killed');
  for (const relay of [first, second, third]) {
    if (!relay) continue;
    relay.serve.child.kill('SIGTERM');
    const done = await relay.serve.done;
    t.equal(done.code, 0);
  }
  const stderr = (await first?.serve.done)?.stderr ?? '';
  t.match(stderr, /"event":"limits-local"/, 'a relay said it went on local limits');
});
