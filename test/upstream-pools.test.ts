// Upstream connections are pooled per distinct settings and reused across messages; a pool pushed out
// of the cache is closed, so no connection outlives the settings it was made for.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import type { SmtpUpstream } from '../config/types.js';
import { UpstreamPools } from '../relay/delivery/pools.js';
import { sendViaSmtp } from '../relay/delivery/smtp.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const upstreamAt = (port: number, name = 'u'): SmtpUpstream => ({
  kind: 'smtp',
  owner: 'platform',
  name,
  host: '127.0.0.1',
  port,
  tls: 'none',
  allowInsecureAuth: false,
  timeoutMs: 5000,
  connectTimeoutMs: 2000,
  maxConnections: 2,
});
const envelope = { mailFrom: 'a@example.com', rcptTo: ['b@example.com'] };
const message = Buffer.from('Subject: pooled\r\n\r\nhi\r\n');

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await sleep(20);
  if (!condition()) throw new Error(`timed out waiting for ${what}`);
}

t.test('messages to one upstream reuse one pooled connection', async (t) => {
  const up = await startUpstream();
  t.teardown(() => up.close());
  const relay = await startTestRelay(`smarthost: { host: 127.0.0.1, port: ${up.port}, tls: none }\n`);
  t.teardown(() => relay.close());
  for (let i = 0; i < 5; i++) await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' });
  t.equal(up.received.length, 5);
  t.equal(up.connections.opened, 1, 'one connection carried all five');
});

t.test('tenants with the same upstream settings share one pool; connections logged in with credentials are their owner\'s', async (t) => {
  const pools = new UpstreamPools('relay.test');
  t.teardown(() => pools.close());
  t.equal(pools.get(upstreamAt(2525, 'tenant-a')), pools.get(upstreamAt(2525, 'tenant-b')));
  const auth = { kind: 'password', user: 'u', pass: 'changed', id: 'c1' } as const;
  t.not(pools.get(upstreamAt(2525)), pools.get({ ...upstreamAt(2525), auth, tls: 'starttls' }));
  t.equal(pools.size, 2);
  t.not(pools.get({ ...upstreamAt(2525, 'tenant-a'), auth }), pools.get({ ...upstreamAt(2525, 'tenant-b'), auth }), 'the same credentials, another tenant: another pool');
});

t.test('a pool evicted from the cache closes its connections', async (t) => {
  const first = await startUpstream();
  const second = await startUpstream();
  t.teardown(() => Promise.all([first.close(), second.close()]));
  const pools = new UpstreamPools('relay.test', undefined, 1);
  t.teardown(() => pools.close());
  await sendViaSmtp(pools, upstreamAt(first.port), envelope, message);
  t.equal(first.connections.open, 1, 'idle pooled connection kept open');
  await sendViaSmtp(pools, upstreamAt(second.port), envelope, message);
  await until(() => first.connections.open === 0, 'the evicted pool to close');
  t.equal(first.connections.open, 0);
  t.equal(second.connections.open, 1);
});
