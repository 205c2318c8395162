// Redis as the fleet example runs it: TLS only, the default user off, and the ACL of the example's own
// Secret for the relays (their key prefix and channels, the commands they use). A real redis-server
// started with that ACL file and the test's certificates: limits, heartbeats, send-test outcomes and the
// invalidation channel all work through it, and the user can touch nothing outside its prefix.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { makeTestCerts } from './helpers/certs.js';
import { startPlatform } from './helpers/platform.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { needRedis } from './helpers/redis.js';
import { closedPort, startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const certs = makeTestCerts();
const PASSWORD = 'aLongRandomRedisPassword0123';

/** The ACL file of deploy/kubernetes/fleet.yaml's Secret, with the test's password. */
function exampleAcl(): string {
  const docs = parseAllDocuments(fs.readFileSync('deploy/kubernetes/fleet.yaml', 'utf8')).map((d) => d.toJS());
  const secret = docs.find((d) => d.kind === 'Secret' && d.metadata.name === 'tenant-relay-redis-acl');
  return String(secret.stringData['users.acl']).replace(/>\S+/, `>${PASSWORD}`);
}

t.test("the fleet example's Redis (TLS, ACL user on tenant-relay:*) carries everything the relays share, and nothing else", needRedis, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-redis-acl-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    fs.writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  };
  const port = await closedPort();
  const server: ChildProcess = spawn(
    'redis-server',
    [
      '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--tls-cert-file', file('redis.crt', certs.server.cert), '--tls-key-file', file('redis.key', certs.server.key), '--tls-ca-cert-file', certs.caFile,
      '--tls-auth-clients', 'no', '--aclfile', file('users.acl', exampleAcl()),
    ],
    { stdio: 'ignore' },
  );
  t.teardown(() => {
    server.kill('SIGKILL');
  });
  const client = (user: string, pass: string) => new Redis({ host: '127.0.0.1', port, username: user, password: pass, tls: { ca: certs.ca, servername: 'localhost' }, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  const admin = client('tenant-relay', PASSWORD);
  admin.on('error', () => {});
  t.teardown(() => admin.disconnect());
  let up = false;
  for (let i = 0; i < 100 && !up; i++) {
    up = await admin.connect().then(
      () => true,
      async () => {
        admin.disconnect();
        await new Promise((r) => setTimeout(r, 50));
        return false;
      },
    );
  }
  t.ok(up, 'redis-server is up, over TLS, for the relay user');

  const platform = await startPlatform((by, value) => (value === 'globex' || value.endsWith('@globex.test') ? { body: { id: 'globex', match: { domains: ['globex.test'] } } } : { status: 404 }));
  t.teardown(() => platform.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
limits: { store: { redis: { url: "rediss://tenant-relay:${PASSWORD}@localhost:${port}/0", ca: ${certs.caFile}, timeoutMilliseconds: 500, signingKey: "shared-signing-key-of-the-test-fleet-0123" } } }
tenantSource: { url: "${platform.url}", invalidationChannel: "tenant-relay:tenants", upstreamHosts: { allow: [127.0.0.1/32], ports: [] } }
tenants:
  - { id: acme, match: { domains: [acme.test] }, limits: { messagesPerMinute: 100 } }
`,
  );
  t.teardown(() => relay.close());
  const token = 'acl-send-test-0123456789';
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'x@example.com', raw: `From: <app@acme.test>\r\nX-Tenant-Relay-Send-Test: ${token}\r\nSubject: t\r\n\r\nhi\r\n` });
  await sendThrough(relay.port, { from: 'app@globex.test', to: 'y@example.com' });
  t.equal(upstream.received.length, 2);
  t.ok(await until(() => relay.logs.some((l) => l.event === 'redis-connected' && l.role === 'subscriber')), 'the subscriber logged in');
  t.ok(await until(() => relay.logs.some((l) => l.event === 'suppression-index-filled')), "the suppression index filled: the user may read the keyspace's size and scan it, and listen on its channels");
  t.notOk(relay.logs.some((l) => l.event === 'limits-local'), 'every limit was counted in Redis: no call was refused');
  t.ok(await admin.exists('tenant-relay:limit:tenant:acme'), "the tenant's budget is in Redis");
  t.ok((await admin.zcard('tenant-relay:members')) >= 1, 'the heartbeat is in Redis');
  t.ok(await admin.exists(`tenant-relay:send-test:${token}`), 'the send-test outcome is in Redis');
  t.ok(await until(async () => Number(((await admin.pubsub('NUMSUB', 'tenant-relay:tenants')) as [string, number])[1]) > 0), 'the relay subscribed to the invalidation channel');
  await admin.publish('tenant-relay:tenants', 'globex');
  t.ok(await until(() => relay.logs.some((l) => l.event === 'tenant-invalidated')), 'an invalidation on the channel reached the relay');

  // What the user may not do: keys or channels outside the prefix, reading the keyspace, server commands.
  const refused = async (what: Promise<unknown>) => what.then(() => 'allowed', (err: Error) => (/NOPERM/.test(err.message) ? 'refused' : err.message));
  t.equal(await refused(admin.set('someone-else:key', 'x')), 'refused', 'a key outside tenant-relay:*');
  t.equal(await refused(admin.publish('other-channel', 'x')), 'refused', 'a channel outside tenant-relay:*');
  t.equal(await refused(admin.keys('*')), 'refused', 'KEYS');
  t.equal(await refused(admin.flushall()), 'refused', 'FLUSHALL');
  t.equal(await refused(admin.config('GET', 'requirepass')), 'refused', 'CONFIG');
  const anonymous = new Redis({ host: '127.0.0.1', port, tls: { ca: certs.ca, servername: 'localhost' }, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  anonymous.on('error', () => {});
  t.teardown(() => anonymous.disconnect());
  await anonymous.connect().catch(() => undefined);
  t.match(await anonymous.get('tenant-relay:members').then(() => 'allowed', (err: Error) => err.message), /NOAUTH|NOPERM|closed/i, 'the default user is off');
});
