// Upstream TLS: certificates are verified, STARTTLS is required when configured, and the tenant's
// credentials never cross the wire in cleartext. A TLS failure is a 451: the client keeps the message.
import t from 'tap';
import { makeTestCerts } from './helpers/certs.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

const certs = makeTestCerts();
const users = { relay: 'upstream-secret' };

async function relayTo(upstream: Upstream, settings: string) {
  const relay = await startTestRelay(`
smarthost: { host: 127.0.0.1, port: ${upstream.port}, username: relay, password: upstream-secret, connectTimeoutSeconds: 2, timeoutSeconds: 5, ${settings} }
`);
  t.teardown(() => relay.close());
  return relay;
}

t.test('implicit TLS with a private CA delivers and authenticates', async (t) => {
  const up = await startUpstream({ tls: 'implicit', cert: certs.server, users });
  t.teardown(() => up.close());
  const relay = await relayTo(up, `tls: implicit, ca: ${certs.caFile}`);
  const info = await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' });
  t.match(info.response, /^250 2\.0\.0/);
  t.match(up.received, [{ user: 'relay', secure: true }]);
});

t.test('required STARTTLS with a private CA delivers and authenticates', async (t) => {
  const up = await startUpstream({ tls: 'starttls', cert: certs.server, users });
  t.teardown(() => up.close());
  const relay = await relayTo(up, `tls: starttls, ca: ${certs.caFile}`);
  await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' });
  t.match(up.received, [{ user: 'relay', secure: true }]);
});

t.test('an upstream that offers no STARTTLS gets neither the credentials nor the message', async (t) => {
  // The upstream would even take AUTH in cleartext: the relay must not offer it the password.
  const up = await startUpstream({ tls: 'none', users, allowInsecureAuth: true });
  t.teardown(() => up.close());
  const relay = await relayTo(up, `tls: starttls, ca: ${certs.caFile}`);
  const reply = await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' }));
  t.match(reply, /^451 4\.4\.0 TLS with upstream smarthost failed/);
  t.same(up.authAttempts, [], 'no AUTH was attempted');
  t.same(up.received, []);
});

t.test('a self-signed upstream certificate is refused when no CA is configured', async (t) => {
  const up = await startUpstream({ tls: 'starttls', cert: certs.selfSigned, users });
  t.teardown(() => up.close());
  const relay = await relayTo(up, 'tls: starttls');
  const reply = await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' }));
  t.match(reply, /^451 4\.4\.0 TLS with upstream smarthost failed/);
  t.same(up.authAttempts, []);
  t.same(up.received, []);
});

t.test('a certificate from the right CA but for another name is refused', async (t) => {
  const up = await startUpstream({ tls: 'implicit', cert: certs.server, users });
  t.teardown(() => up.close());
  const relay = await relayTo(up, `tls: implicit, ca: ${certs.caFile}, servername: mail.other.test`);
  const reply = await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' }));
  t.match(reply, /^451 4\.4\.0 TLS with upstream smarthost failed/);
  t.same(up.received, []);
});

t.test('wrong upstream credentials are a temporary failure, not a bounce', async (t) => {
  const up = await startUpstream({ tls: 'implicit', cert: certs.server, users: { relay: 'another-password' } });
  t.teardown(() => up.close());
  const relay = await relayTo(up, `tls: implicit, ca: ${certs.caFile}`);
  const reply = await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' }));
  t.match(reply, /^451 4\.4\.0 Upstream smarthost refused the relay's credentials/);
  t.notMatch(JSON.stringify(relay.logs), /upstream-secret/);
});
