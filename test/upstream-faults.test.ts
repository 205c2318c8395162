// What the client hears when the upstream misbehaves, in pass-through mode: 451 4.4.x when it should
// retry, 5xx when it must not, and never 250 unless every recipient was accepted upstream.
import t from 'tap';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { refusingPort, startDotFaultServer, startSilentServer, startUpstream } from './helpers/upstream.js';

async function relayToPort(port: number, extra = '') {
  const relay = await startTestRelay(`
smarthost: { host: 127.0.0.1, port: ${port}, tls: none, connectTimeoutSeconds: 1, timeoutSeconds: 2 ${extra} }
`);
  t.teardown(() => relay.close());
  return relay;
}

const send = (port: number, to: string | string[] = 'b@example.com') => replyOf(sendThrough(port, { from: 'a@example.com', to }));

t.test('a 421 greeting is a 451 4.4.0 with the upstream text', async (t) => {
  const up = await startUpstream({ greeting: { code: 421, text: 'too busy, come back later' } });
  t.teardown(() => up.close());
  const relay = await relayToPort(up.port);
  t.match(await send(relay.port), /^451 4\.4\.0 Upstream smarthost deferred the message: 421 .*too busy/);
});

t.test('a 451 at RCPT is a 451 4.4.0', async (t) => {
  const up = await startUpstream({ rcpt: () => [451, 'greylisted, try again'] });
  t.teardown(() => up.close());
  const relay = await relayToPort(up.port);
  t.match(await send(relay.port), /^451 4\.4\.0 .*greylisted/);
});

t.test('a 550 at RCPT is passed on as 550 with the upstream enhanced code', async (t) => {
  const up = await startUpstream({ rcpt: () => [550, '5.1.1 no such user'] });
  t.teardown(() => up.close());
  const relay = await relayToPort(up.port);
  t.match(await send(relay.port), /^550 5\.1\.1 Upstream smarthost rejected the message: 550 5\.1\.1 no such user/);
});

t.test('a 554 after the dot is a 554', async (t) => {
  const up = await startUpstream({ data: [554, '5.7.1 message looks like spam'] });
  t.teardown(() => up.close());
  const relay = await relayToPort(up.port);
  t.match(await send(relay.port), /^554 5\.7\.1 .*looks like spam/);
});

t.test('upstream text is sanitised before it reaches the client', async (t) => {
  const up = await startUpstream({ rcpt: () => [550, `5.1.1 ${'x'.repeat(400)}`] });
  t.teardown(() => up.close());
  const relay = await relayToPort(up.port);
  const reply = await send(relay.port);
  t.match(reply, /^550 5\.1\.1 .*\.\.\.$/);
  t.ok(reply.length < 300, 'bounded length');
});

t.test('some recipients accepted and one refused for good is 554 naming the refused one, never 250', async (t) => {
  const up = await startUpstream({ rcpt: (a) => (a.startsWith('gone') ? [550, '5.1.1 no such user'] : undefined) });
  t.teardown(() => up.close());
  const relay = await relayToPort(up.port);
  const reply = await send(relay.port, ['ok@example.com', 'gone@example.com']);
  t.match(reply, /^554 5\.0\.0 Only 1 of 2 recipients were accepted upstream; refused: gone@example\.com: 550/);
  t.equal(up.received.length, 1, 'the accepted recipient got it');
});

t.test('some recipients accepted and one deferred is 451, so the client retries', async (t) => {
  const up = await startUpstream({ rcpt: (a) => (a.startsWith('later') ? [450, '4.2.1 mailbox busy'] : undefined) });
  t.teardown(() => up.close());
  const relay = await relayToPort(up.port);
  t.match(await send(relay.port, ['ok@example.com', 'later@example.com']), /^451 4\.4\.0 Only 1 of 2 recipients/);
});

t.test('a refused connection is 451 4.4.1', async (t) => {
  const relay = await relayToPort(await refusingPort());
  t.match(await send(relay.port), /^451 4\.4\.1 Upstream smarthost is unreachable/);
});

t.test('a hanging upstream is cut by the deadline: 451 4.4.2, and other upstreams keep flowing', async (t) => {
  const silent = await startSilentServer();
  const healthy = await startUpstream();
  t.teardown(() => Promise.all([silent.close(), healthy.close()]));
  const relay = await startTestRelay(`
smarthost: { host: 127.0.0.1, port: ${silent.port}, tls: none, connectTimeoutSeconds: 1, timeoutSeconds: 2 }
tenants:
  - id: healthy
    match: { domains: [healthy.test] }
    upstream: { host: 127.0.0.1, port: ${healthy.port}, tls: none }
`);
  t.teardown(() => relay.close());
  const hung = send(relay.port);
  const other = await sendThrough(relay.port, { from: 'x@healthy.test', to: 'y@example.com' });
  t.match(other.response, /^250/, 'another tenant delivers while the smarthost hangs');
  t.match(await hung, /^451 4\.4\.2 Upstream smarthost did not answer in time/);
});

t.test('an upstream that drops the connection after the dot is 451, never 250', async (t) => {
  const up = await startDotFaultServer('drop');
  t.teardown(() => up.close());
  const relay = await relayToPort(up.port);
  t.match(await send(relay.port), /^451 4\.4\.2 Connection to upstream smarthost was lost/);
  t.equal(up.dots, 1, 'the upstream did get the whole message: a retry may duplicate, which beats a loss');
});

t.test('an upstream silent after the dot is cut by the whole-send deadline, not left hanging', async (t) => {
  const up = await startDotFaultServer('silence');
  t.teardown(() => up.close());
  const relay = await relayToPort(up.port);
  t.match(await send(relay.port), /^451 4\.4\.2/);
});
