// The upstream host policy: a tenant's own upstream may not point at the relay's machine, link-local or
// metadata addresses (nor, if asked, private ranges), unless allowed; the smarthost is the platform's
// and is not checked. The checked address is the one connected to, with the certificate still checked
// against the configured name.
import t from 'tap';
import { checkUpstreamHost } from '../relay/delivery/host-policy.js';
import { makeTestCerts } from './helpers/certs.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const certs = makeTestCerts();
const tenantServer = await startUpstream({ tls: 'implicit', cert: certs.server });
const smarthost = await startUpstream();
t.teardown(() => Promise.all([tenantServer.close(), smarthost.close()]));

const relayWith = async (policy: string, host = '127.0.0.1') => {
  const relay = await startTestRelay(`
upstreamHosts: { ${policy} }
smarthost: { host: 127.0.0.1, port: ${smarthost.port}, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test] }
    upstream: { host: ${host}, port: ${tenantServer.port}, tls: implicit, ca: ${certs.caFile} }
`);
  t.teardown(() => relay.close());
  return relay;
};

t.test('off by default: a tenant upstream on loopback is used', async (t) => {
  const relay = await relayWith('');
  t.match((await sendThrough(relay.port, { from: 'a@acme.test', to: 'x@example.com' })).response, /^250 /);
});

t.test('denySpecialAddresses: a tenant upstream on loopback is refused with 451, nothing sent; the smarthost still works', async (t) => {
  const relay = await relayWith('denySpecialAddresses: true');
  const before = tenantServer.received.length;
  const reply = await replyOf(sendThrough(relay.port, { from: 'a@acme.test', to: 'x@example.com' }));
  t.match(reply, /^451 4\.4\.0 Upstream acme not used: 127\.0\.0\.1 resolves to 127\.0\.0\.1, which the upstream host policy forbids/);
  t.equal(tenantServer.received.length, before);
  t.match((await sendThrough(relay.port, { from: 'a@other.test', to: 'x@example.com' })).response, /^250 /);
});

t.test('a name that resolves to loopback is refused too', async (t) => {
  const relay = await relayWith('denySpecialAddresses: true', 'localhost');
  t.match(await replyOf(sendThrough(relay.port, { from: 'a@acme.test', to: 'x@example.com' })), /^451 4\.4\.0 Upstream acme not used: localhost resolves to /);
});

t.test('an allowed range passes; the relay connects to the checked address and verifies the certificate by name', async (t) => {
  const relay = await relayWith('denySpecialAddresses: true, allow: [127.0.0.0/8, "::1/128"]', 'localhost');
  const before = tenantServer.received.length;
  t.match((await sendThrough(relay.port, { from: 'a@acme.test', to: 'x@example.com' })).response, /^250 /);
  t.equal(tenantServer.received.length, before + 1);
});

t.test('the ranges', async (t) => {
  const special = { denySpecialAddresses: true, denyPrivateAddresses: false, allow: [] };
  const all = { ...special, denyPrivateAddresses: true };
  for (const a of ['127.0.0.1', '169.254.169.254', '0.0.0.0', '::1', 'fe80::1', '::ffff:127.0.0.1']) t.match(await checkUpstreamHost(a, special), { ok: false }, a);
  for (const a of ['10.1.2.3', '172.20.0.1', '192.168.1.1', '100.64.0.1', 'fd12::1']) {
    t.match(await checkUpstreamHost(a, special), { ok: true }, `${a} without denyPrivateAddresses`);
    t.match(await checkUpstreamHost(a, all), { ok: false }, `${a} with denyPrivateAddresses`);
  }
  t.match(await checkUpstreamHost('203.0.113.7', all), { ok: true, address: '203.0.113.7' });
});
