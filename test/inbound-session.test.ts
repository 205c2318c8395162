// The inbound SMTP session: who may send, what addresses and sizes are accepted, and that a client
// that misbehaves gets a proper reply (with an enhanced status code) and never takes the relay down.
import net from 'node:net';
import t, { type Test } from 'tap';
import { hashPassword } from '../relay/inbound/passwords.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { openDataSession, openRawSession } from './helpers/smtp-client.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const upstream = await startUpstream();
const hash = await hashPassword('right-password');
const relayYaml = (allow: string) => `
maxMessageSizeBytes: 2048
inbound:
  allowUnauthenticatedFrom: ${allow}
  users: [{ username: app, passwordHash: "${hash}" }]
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`;
const open = await startTestRelay(relayYaml('[127.0.0.0/8, ::1/128]'));
const closed = await startTestRelay(relayYaml('[10.0.0.0/8]'));
t.teardown(async () => {
  await Promise.all([open.close(), closed.close()]);
  await upstream.close();
});

async function session(port: number) {
  const s = await openRawSession(port);
  t.teardown(() => s.close());
  await s.send('EHLO client.test\r\n');
  return s;
}

t.test('EHLO advertises enhanced status codes, the size limit and AUTH on loopback', async (t) => {
  const s = await openRawSession(open.port);
  t.teardown(() => s.close());
  t.match(s.greeting, /^220 /);
  const ehlo = await s.send('EHLO client.test\r\n');
  t.match(ehlo, /250-ENHANCEDSTATUSCODES/);
  t.match(ehlo, /SIZE 2048/);
  t.match(ehlo, /AUTH PLAIN LOGIN/);
});

t.test('an unauthenticated client outside the allowed networks gets 530 5.7.0: no open relay', async (t) => {
  const s = await session(closed.port);
  t.match(await s.send('MAIL FROM:<a@example.com>\r\n'), /^530 5\.7\.0 Authentication required/);
});

t.test('the same client may send once authenticated', async (t) => {
  const info = await sendThrough(closed.port, { from: 'a@example.com', to: 'b@example.com', auth: { user: 'app', pass: 'right-password' } });
  t.match(info.response, /^250 2\.0\.0/);
});

t.test('a wrong password gets 535 5.7.8', async (t) => {
  const reply = await replyOf(sendThrough(closed.port, { from: 'a@example.com', to: 'b@example.com', auth: { user: 'app', pass: 'wrong' } }));
  t.match(reply, /^535 5\.7\.8 Authentication credentials invalid/);
  const unknown = await replyOf(sendThrough(closed.port, { from: 'a@example.com', to: 'b@example.com', auth: { user: 'nobody', pass: 'x' } }));
  t.match(unknown, /^535 5\.7\.8/);
});

t.test('routing tricks in addresses are refused with 501', async (t) => {
  const s = await session(open.port);
  for (const bad of ['a%b@example.com', 'a!b@example.com', '"a@b"@example.com', 'a@b@example.com', 'a,b@example.com']) {
    t.match(await s.send(`MAIL FROM:<${bad}>\r\n`), /^50[01] /, `MAIL FROM:<${bad}>`);
  }
  t.match(await s.send('MAIL FROM:<a@example.com>\r\n'), /^250 /);
  for (const bad of ['x%y@example.com', 'x!y@example.com', 'x,y@example.com']) {
    t.match(await s.send(`RCPT TO:<${bad}>\r\n`), /^50[01] /, `RCPT TO:<${bad}>`);
  }
});

t.test('a source route is refused, in MAIL FROM and in RCPT TO', async (t) => {
  const s = await session(open.port);
  t.match(await s.send('MAIL FROM:<@relay.test:a@example.com>\r\n'), /^501 5\.1\.3 Source routes/);
  t.match(await s.send('MAIL FROM:<a@example.com>\r\n'), /^250 /);
  t.match(await s.send('RCPT TO:<@route.test,@other.test:x@example.com>\r\n'), /^501 5\.1\.3 Source routes/);
  t.match(await s.send('RCPT TO: < @route.test:x@example.com>\r\n'), /^5\d\d /);
});

t.test('our enhanced code replaces the one smtp-server would derive, never both', async (t) => {
  const s = await session(open.port);
  t.match(await s.send('MAIL FROM:<a%b@example.com>\r\n'), /^501 5\.1\.7 Sender address must be/);
});

t.test('SIZE over the limit is refused at MAIL FROM with 552', async (t) => {
  const s = await session(open.port);
  t.match(await s.send('MAIL FROM:<a@example.com> SIZE=999999\r\n'), /^552 5\.3\.4/);
});

t.test('data over the limit is refused with 552 5.3.4 and nothing is forwarded', async (t) => {
  const before = upstream.received.length;
  const reply = await replyOf(sendThrough(open.port, { from: 'a@example.com', to: 'b@example.com', raw: `Subject: big\r\n\r\n${'x'.repeat(5000)}\r\n` }));
  t.match(reply, /^552 5\.3\.4 Message exceeds the maximum size of 2048 bytes/);
  t.equal(upstream.received.length, before);
});

t.test('a client that disconnects mid-DATA sends nothing and the relay carries on', async (t) => {
  const before = upstream.received.length;
  const { session: s } = await openDataSession(open.port);
  const pending = s.send('Subject: cut\r\n\r\npartial bo');
  s.close();
  await pending;
  const info = await sendThrough(open.port, { from: 'a@example.com', to: 'b@example.com' });
  t.match(info.response, /^250/, 'still serving');
  t.equal(upstream.received.length, before + 1, 'only the complete message went upstream');
});

/** A client that keeps its side open after QUIT (allowHalfOpen), having said EHLO: what it heard, and whether the relay's side ended. */
async function halfOpenSession(t: Test, port: number) {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  t.teardown(() => socket.destroy());
  const state = { text: '', ended: false, failed: undefined as string | undefined, socket };
  socket.on('data', (d) => (state.text += d.toString('latin1')));
  socket.on('end', () => (state.ended = true));
  socket.on('error', (err: NodeJS.ErrnoException) => (state.failed = err.code));
  t.ok(await until(() => /^220 /m.test(state.text), 5_000), 'greeted');
  socket.write('EHLO client.test\r\n');
  t.ok(await until(() => /^250 /m.test(state.text), 5_000), 'EHLO answered');
  return state;
}

t.test('after the 221 to QUIT the relay closes the connection itself: it does not wait for the client to close its side', async (t) => {
  const c = await halfOpenSession(t, open.port);
  c.socket.write('QUIT\r\n');
  t.ok(await until(() => /^221 /m.test(c.text) && c.ended, 5_000), '221, then the end of the stream');
  // Bytes sent to a closed socket are answered with a reset; a half-closed one (smtp-server's own way,
  // for up to 5 s) would take them.
  for (let i = 0; i < 40 && c.failed === undefined && !c.socket.destroyed; i++) {
    c.socket.write('NOOP\r\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.match(c.failed ?? (c.socket.destroyed ? 'closed' : 'still open'), /^(ECONNRESET|EPIPE|closed)$/, 'the relay no longer holds the connection');
  t.match(c.text, /\r\n221 [^\r\n]*\r\n$/, 'nothing after the 221: no NOOP was answered');
});

t.test('commands pipelined behind QUIT are not answered, and the 221 still arrives; such a client is not reset', async (t) => {
  const c = await halfOpenSession(t, open.port);
  c.socket.write('QUIT\r\nNOOP\r\nRSET\r\n');
  t.ok(await until(() => /^221 /m.test(c.text) && c.ended, 5_000), '221, then the end of the stream');
  // A client that pipelined past QUIT may still be sending: the relay reads on (and drops it) rather
  // than answer its bytes with a reset, which could cost it the 221.
  for (let i = 0; i < 6; i++) {
    c.socket.write('NOOP\r\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.equal(c.failed, undefined, 'no reset');
  t.match(c.text, /\r\n221 [^\r\n]*\r\n$/, 'no reply to NOOP or RSET');
});

t.test('reverse DNS is never asked for a loopback client: the Received line names the address only', async (t) => {
  const relay = await startTestRelay(`inbound: { reverseLookup: true, reverseLookupTimeoutSeconds: 1.5 }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`);
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' });
  const received = /^Received: (.*(?:\r\n[ \t].*)*)/m.exec(upstream.received.at(-1)?.raw.toString('latin1') ?? '')?.[1] ?? '';
  t.match(received, /^from \S+ \(\[127\.0\.0\.1\]\)\r\n/);
});
