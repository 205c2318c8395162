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
  const special = { denySpecialAddresses: true, denyPrivateAddresses: false, allow: [], ports: [] };
  const all = { ...special, denyPrivateAddresses: true };
  for (const a of ['127.0.0.1', '169.254.169.254', '0.0.0.0', '::1', 'fe80::1', '::ffff:127.0.0.1']) t.match(await checkUpstreamHost(a, special), { ok: false }, a);
  // Addresses that carry an IPv4 address inside (the network unwraps them), and the other IANA special ranges.
  for (const a of ['64:ff9b::7f00:1', '64:ff9b:1::a00:1', '2002:7f00:1::1', '::7f00:1', '::ffff:0:7f00:1', '192.0.0.8', 'fec0::1', '168.63.129.16', '198.18.0.1', '224.0.0.1', '255.255.255.255', '2001::1', 'ff02::1', '100::1']) {
    t.match(await checkUpstreamHost(a, special), { ok: false }, `${a} is special`);
  }
  for (const a of ['10.1.2.3', '172.20.0.1', '192.168.1.1', '100.64.0.1', 'fd12::1']) {
    t.match(await checkUpstreamHost(a, special), { ok: true }, `${a} without denyPrivateAddresses`);
    t.match(await checkUpstreamHost(a, all), { ok: false }, `${a} with denyPrivateAddresses`);
  }
  t.match(await checkUpstreamHost('8.8.4.4', all), { ok: true, address: '8.8.4.4' });
  t.match(await checkUpstreamHost('2a00:1450:4001:80b::200e', all), { ok: true });
});

t.test('denySpecialAddresses: false is honoured (private ranges can still be denied alone)', async (t) => {
  const privateOnly = { denySpecialAddresses: false, denyPrivateAddresses: true, allow: [], ports: [] };
  t.match(await checkUpstreamHost('127.0.0.1', privateOnly), { ok: true });
  t.match(await checkUpstreamHost('10.0.0.1', privateOnly), { ok: false });
  t.match(await checkUpstreamHost('::ffff:10.0.0.1', privateOnly), { ok: false }, 'a mapped private address too');
});

t.test('ports: a policy that lists ports refuses the others', async (t) => {
  const mail = { denySpecialAddresses: false, denyPrivateAddresses: false, allow: [], ports: [25, 465, 587, 2525] };
  t.match(await checkUpstreamHost('127.0.0.1', mail, 587), { ok: true });
  t.match(await checkUpstreamHost('127.0.0.1', mail, 6379), { ok: false, reason: 'port 6379 is not one the upstream host policy allows (25, 465, 587, 2525)' });
});
