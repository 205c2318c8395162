// Secrets by reference: a `${file:}` secret (a Kubernetes Secret mounted as a file) rotated under a
// running relay is in use for the next delivery within seconds, without a reload by hand; the old one is
// never sent again, and neither value is logged.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import t, { type Test } from 'tap';
import { loadConfigFile } from '../config/load.js';
import { watchFile } from '../relay/runtime/reload.js';
import { startRelay } from '../relay/runtime/start-relay.js';
import { sendThrough } from './helpers/relay.js';
import { needRedis, startRedis } from './helpers/redis.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

/** A pass-through relay started from a file in `dir` (so its \${file:} secrets are watched), its log kept as text. */
async function relayFromFile(t: Test, dir: string, yaml: string) {
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, `listen: [{ host: 127.0.0.1, port: 0 }]\nops: { port: 0 }\ndelivery: { mode: passthrough, spool: { path: ${dir}/spool } }\n${yaml}\n`);
  const log = { text: '' };
  const relay = await startRelay(loadConfigFile(file), { logger: pino({ level: 'debug' }, { write: (line: string) => void (log.text += line) }), configFile: file });
  t.teardown(() => relay.close(0));
  return { relay, log };
}

t.test('a rotated password file is used by the next delivery, the old password is never sent again, and neither is logged', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-secret-files-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const users: Record<string, string> = { relay: 'old-password-1c9e' };
  const upstream = await startUpstream({ users, allowInsecureAuth: true });
  t.teardown(() => upstream.close());
  const secret = path.join(dir, 'upstream-password');
  fs.writeFileSync(secret, 'old-password-1c9e\n');
  const { relay, log } = await relayFromFile(t, dir, `smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none, allowInsecureAuth: true, username: relay, password: "\${file:${secret}}" }`);
  const port = relay.addresses[0]?.port ?? 0;
  t.match((await sendThrough(port, { from: 'app@example.org', to: 'one@example.com' })).response, /^250 /);

  // The platform rotates it: the upstream takes only the new one from now on.
  users.relay = 'new-password-7f2a';
  const attemptsBefore = upstream.authAttempts.length;
  fs.writeFileSync(secret, 'new-password-7f2a\n');
  t.ok(await until(() => log.text.includes('"event":"config-reloaded"'), 15_000), 'reloaded by itself (a 500 ms poll and a 300 ms debounce; the bound allows a loaded machine)');
  t.match(log.text, new RegExp(`"why":"secret file changed: ${secret.replaceAll('/', '\\/')}"`), 'the log names the file');
  for (let i = 0; i < 3; i++) t.match((await sendThrough(port, { from: 'app@example.org', to: `after-${i}@example.com` })).response, /^250 /, 'delivered at the first try');
  t.equal(upstream.authAttempts.length - attemptsBefore, 1, 'one new login, with the new password: the old one was not tried');
  t.equal(upstream.received.length, 4);
  t.notMatch(log.text, /old-password|new-password/, 'neither value is logged');
});

t.test("a rotated Redis password file: no restart, the relay's next connection to Redis logs in with the new one", needRedis, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-secret-files-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const redis = await startRedis();
  t.teardown(() => redis.close());
  // The test's own connection stays logged in: Redis keeps connections made before a password changes.
  await redis.client.config('SET', 'requirepass', 'old-redis-pass-41d0');
  const secret = path.join(dir, 'redis-password');
  fs.writeFileSync(secret, 'old-redis-pass-41d0\n');
  const { log } = await relayFromFile(t, dir, `smarthost: { host: 127.0.0.1, port: 9, tls: none }
limits: { store: { redis: { url: "redis://:\${file:${secret}}@127.0.0.1:${redis.port}/0", signingKey: "shared-signing-key-of-the-test-fleet-0123" } } }`);
  const relayClients = async () => String(await redis.client.client('LIST')).split('\n').filter((l) => l.includes('name=tenant-relay-limits'));
  t.ok(await until(async () => (await relayClients()).length === 1, 15_000), 'connected with the first password');

  await redis.client.config('SET', 'requirepass', 'new-redis-pass-9b3e');
  fs.writeFileSync(secret, 'new-redis-pass-9b3e\n');
  t.ok(await until(() => log.text.includes('"event":"config-reloaded"'), 15_000), 'reloaded by itself');
  t.notMatch(log.text, /config-restart-needed/, 'no restart asked for');
  // Redis drops the relay's connection (a failover, a restart): it logs in again, with the new password.
  for (const line of await relayClients()) await redis.client.client('KILL', 'ID', /\bid=(\d+)/.exec(line)?.[1] ?? '0');
  // Named only once logged in (ioredis sends CLIENT SETNAME after AUTH).
  t.ok(await until(async () => (await relayClients()).length === 1, 15_000), 'logged in again');
  t.notMatch(log.text, /old-redis-pass|new-redis-pass/, 'neither value is logged');
});

t.test('a file rotated the moment its watch began (same size, same inode) is a change all the same', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-secret-files-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const secret = path.join(dir, 'secret');
  let seen = 0;
  // Many files at once, each rewritten in place right after its watch starts: the race the relay's start
  // (watch, then connect, then the platform rotates) can lose on a loaded machine.
  const stops: (() => void)[] = [];
  for (let i = 0; i < 20; i++) {
    const file = `${secret}-${i}`;
    fs.writeFileSync(file, 'old-secret-value\n');
    fs.utimesSync(file, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  }
  for (let i = 0; i < 20; i++) {
    const file = `${secret}-${i}`;
    stops.push(watchFile(file, () => seen++, 20, 50));
    fs.writeFileSync(file, 'new-secret-value\n');
  }
  t.teardown(() => stops.forEach((stop) => stop()));
  t.ok(await until(() => seen === 20, 5_000), `every rotation seen (${seen} of 20)`);
});
