// Bounded resources (SCENARIOS 14, 17-21, 23): AUTH guessing, recipients, connections per address and in
// total, command length, and deadlines that a client trickling bytes cannot defeat. And no open relay.
import t from 'tap';
import { parseConfig } from '../config/load.js';
import { SessionGuards } from '../relay/inbound/guards.js';
import { hashPassword } from '../relay/inbound/passwords.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { openDataSession, openRawSession } from './helpers/smtp-client.js';
import { startUpstream } from './helpers/upstream.js';

const upstream = await startUpstream();
t.teardown(() => upstream.close());
const hash = await hashPassword('right');

async function relayWith(inbound: string) {
  const relay = await startTestRelay(`
inbound: { users: [{ username: app, passwordHash: "${hash}" }], authFailureDelaySeconds: 0.01, ${inbound} }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`);
  t.teardown(() => relay.close());
  return relay;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

t.test('AUTH guessing: each failure is 535, the last one 421 4.7.0 and the connection is closed', async (t) => {
  const relay = await relayWith('maxAuthFailures: 3');
  const s = await openRawSession(relay.port);
  t.teardown(() => s.close());
  await s.send('EHLO client.test\r\n');
  t.match(await s.send(`AUTH PLAIN ${b64('\0app\0guess1')}\r\n`), /^535 5\.7\.8 /);
  t.match(await s.send(`AUTH PLAIN ${b64('\0app\0guess2')}\r\n`), /^535 5\.7\.8 /);
  t.match(await s.send(`AUTH PLAIN ${b64('\0app\0guess3')}\r\n`), /^421 4\.7\.0 Too many authentication failures/);
  t.match(await s.send('NOOP\r\n'), /^closed/);
});

t.test('recipients past maxRecipients get 452 4.5.3; the accepted ones still get the message', async (t) => {
  const relay = await relayWith('maxRecipients: 3');
  const s = await openRawSession(relay.port);
  t.teardown(() => s.close());
  await s.send('EHLO client.test\r\n');
  await s.send('MAIL FROM:<a@example.com>\r\n');
  for (let i = 1; i <= 3; i++) t.match(await s.send(`RCPT TO:<r${i}@example.com>\r\n`), /^250 /);
  t.match(await s.send('RCPT TO:<r4@example.com>\r\n'), /^452 4\.5\.3 /);
  await s.send('DATA\r\n');
  t.match(await s.send('Subject: many\r\n\r\nhi\r\n.\r\n'), /^250 /);
  t.same(upstream.received.at(-1)?.rcptTo, ['r1@example.com', 'r2@example.com', 'r3@example.com']);
});

t.test('connections past maxConnectionsPerIp get 421 4.7.0, and a slot frees when one closes', async (t) => {
  // A client from outside the trusted networks (loopback is trusted by default), greeted without the wait.
  const relay = await relayWith('maxConnectionsPerIp: 3, allowUnauthenticatedFrom: [], greetingDelaySeconds: 0');
  const open = await Promise.all([1, 2, 3].map(() => openRawSession(relay.port)));
  const fourth = await openRawSession(relay.port);
  t.match(fourth.greeting, /^421 4\.7\.0 Too many connections from your address/);
  fourth.close();
  open[0]?.close();
  await new Promise((r) => setTimeout(r, 100));
  const again = await openRawSession(relay.port);
  t.match(again.greeting, /^220 /);
  for (const s of [...open, again]) s.close();
});

t.test('trusted networks (allowUnauthenticatedFrom) have a larger share per address, maxConnectionsPerTrustedIp, never every slot', async (t) => {
  const relay = await relayWith('maxConnectionsPerIp: 3, maxConnectionsPerTrustedIp: 10, maxConnections: 50');
  const open = await Promise.all(Array.from({ length: 10 }, () => openRawSession(relay.port)));
  for (const s of open) t.match(s.greeting, /^220 /);
  // One app idling on its share: the eleventh from the same address is refused, so others still get in.
  const more = await openRawSession(relay.port);
  t.match(more.greeting, /^421 4\.7\.0 Too many connections from your address/);
  for (const s of [...open, more]) s.close();
});

t.test('connections past maxConnections get 421 4.3.2, trusted or not', async (t) => {
  const relay = await relayWith('maxConnections: 2, maxConnectionsPerIp: 100');
  const open = await Promise.all([1, 2].map(() => openRawSession(relay.port)));
  const third = await openRawSession(relay.port);
  t.match(third.greeting, /^421 4\.3\.2 Too many connections/);
  for (const s of [...open, third]) s.close();
});

t.test('a trusted client is greeted at once; others wait greetingDelaySeconds, and one that talks first is refused', async (t) => {
  const trusted = await relayWith('greetingDelaySeconds: 0.3');
  // Greeted as the connection opens: even a client that writes at once is served, not refused.
  const eager = await openRawSession(trusted.port, { talkFirst: 'EHLO eager.test\r\n' });
  t.match(eager.greeting, /^220 /);
  t.match(await eager.reply(), /^250[ -]/, 'its EHLO is answered');
  eager.close();
  const untrusted = await relayWith('greetingDelaySeconds: 0.3, allowUnauthenticatedFrom: []');
  const early = await openRawSession(untrusted.port, { talkFirst: 'EHLO early.test\r\n' });
  t.match(early.greeting, /^421 .*You talk too soon/, 'an early talker from another network is refused');
  early.close();
});

t.test('a command line over 512 octets is refused; a 1 MB line with no newline does not grow memory', async (t) => {
  const relay = await relayWith('');
  const s = await openRawSession(relay.port);
  t.teardown(() => s.close());
  t.match(await s.send(`HELO ${'a'.repeat(600)}\r\n`), /^500 5\.5\.2 Line too long/);
  const s2 = await openRawSession(relay.port);
  t.teardown(() => s2.close());
  const before = process.memoryUsage().rss;
  const reply = s2.reply();
  for (let i = 0; i < 16; i++) s2.write('x'.repeat(64 * 1024));
  t.match(await reply, /^(500 5\.5\.2 |closed)/);
  t.ok(process.memoryUsage().rss - before < 50 * 1024 * 1024, 'memory stays flat');
});

t.test('a client that keeps the line busy without progress is cut after progressTimeoutSeconds', async (t) => {
  const relay = await relayWith('progressTimeoutSeconds: 1');
  const s = await openRawSession(relay.port);
  t.teardown(() => s.close());
  const started = Date.now();
  let last = '';
  // NOOP every 200 ms resets an idle timer, never the progress deadline.
  for (let i = 0; i < 20 && !/^(421|closed)/.test(last); i++) {
    last = await s.send('NOOP\r\n');
    await new Promise((r) => setTimeout(r, 200));
  }
  t.match(last, /^(421 4\.4\.2 Session too slow|closed)/);
  t.ok(Date.now() - started < 3000, 'cut at about one second');
});

t.test('a client that makes progress (MAIL, RCPT, a whole message) starts its deadline again each time, and is never cut for it', async (t) => {
  const relay = await relayWith('progressTimeoutSeconds: 1');
  const s = await openRawSession(relay.port);
  t.teardown(() => s.close());
  await s.send('EHLO client.test\r\n');
  // Three transactions over about 2.1 s, each step 350 ms apart: past the deadline in all, never within it.
  const pause = () => new Promise((r) => setTimeout(r, 350));
  for (let i = 0; i < 3; i++) {
    t.match(await s.send('MAIL FROM:<app@example.com>\r\n'), /^250 /);
    await pause();
    t.match(await s.send(`RCPT TO:<kept-${i}@example.com>\r\n`), /^250 /);
    await pause();
    t.match(await s.send('DATA\r\n'), /^354 /);
    t.match(await s.send('Subject: kept\r\n\r\nstill here\r\n.\r\n'), /^250 /);
  }
  t.match(await s.send('NOOP\r\n'), /^250 /, 'the session is still open');
});

t.test('a reloaded progressTimeoutSeconds applies from the next progress of an open session (the deadline is not only restarted at its old length)', async (t) => {
  const base = parseConfig('smarthost: { host: 127.0.0.1, tls: none }\n', 'guards.yaml', {}).inbound;
  let policy = { ...base, progressTimeoutMs: 40 };
  const cut: string[] = [];
  const guards = new SessionGuards({ replyTo: (session) => (cut.push(session.id), true), sessionIds: () => [] }, () => policy);
  guards.progressed({ id: 's1' });
  policy = { ...base, progressTimeoutMs: 60_000 };
  guards.progressed({ id: 's1' });
  await new Promise((r) => setTimeout(r, 200));
  t.same(cut, [], 'not cut at the old 40 ms');
  guards.closed({ id: 's1', remoteAddress: '127.0.0.1' } as Parameters<SessionGuards['closed']>[0]);
});

t.test('DATA dripping one byte at a time is cut at dataTimeoutSeconds, and nothing is sent', async (t) => {
  const relay = await relayWith('dataTimeoutSeconds: 1');
  const before = upstream.received.length;
  const { session: s, dataReply } = await openDataSession(relay.port);
  t.teardown(() => s.close());
  t.match(dataReply, /^354 /);
  const started = Date.now();
  const cut = s.reply();
  const drip = setInterval(() => s.write('x'), 100);
  const reply = await cut;
  clearInterval(drip);
  t.match(reply, /^(421 4\.4\.2 Session too slow|closed)/);
  t.ok(Date.now() - started < 3000, 'cut at about one second');
  t.equal(upstream.received.length, before);
});

// The classic open-relay probes: a client outside allowInsecureAuth networks, without AUTH.
const RELAY_PROBES: [string, string][] = [
  ['spamtest@relay.test', 'victim@target.test'],
  ['spamtest@[127.0.0.1]', 'victim@target.test'],
  ['', 'victim@target.test'],
  ['spamtest@target.test', 'victim@target.test'],
  ['spamtest@relay.test', 'victim%target.test@relay.test'],
  ['spamtest@relay.test', 'victim%target.test@[127.0.0.1]'],
  ['spamtest@relay.test', '"victim@target.test"'],
  ['spamtest@relay.test', '"victim%target.test"'],
  ['spamtest@relay.test', 'victim@target.test@relay.test'],
  ['spamtest@relay.test', '"victim@target.test"@relay.test'],
  ['spamtest@relay.test', '"victim%target.test"@relay.test'],
  ['spamtest@relay.test', '@relay.test:victim@target.test'],
  ['spamtest@relay.test', '@[127.0.0.1]:victim@target.test'],
  ['spamtest@relay.test', 'target.test!victim'],
  ['spamtest@relay.test', 'target.test!victim@relay.test'],
  ['spamtest@relay.test', 'target.test!victim@[127.0.0.1]'],
];

t.test('no open relay: the 16 classic probes from outside the allowed networks all fail', async (t) => {
  const relay = await relayWith('allowUnauthenticatedFrom: []');
  const before = upstream.received.length;
  for (const [from, to] of RELAY_PROBES) {
    const s = await openRawSession(relay.port);
    await s.send('EHLO probe.test\r\n');
    const mail = await s.send(`MAIL FROM:<${from}>\r\n`);
    const rcpt = await s.send(`RCPT TO:<${to}>\r\n`);
    const data = await s.send('DATA\r\n');
    t.match(mail, /^(530 5\.7\.0|5\d\d )/, `MAIL FROM:<${from}> RCPT TO:<${to}>`);
    t.notMatch(data, /^354/, 'never reaches DATA');
    t.notMatch(rcpt, /^250/);
    s.close();
  }
  t.equal(upstream.received.length, before, 'nothing relayed');
});

t.test('from an allowed network, routing tricks in addresses are still refused', async (t) => {
  const relay = await relayWith('');
  for (const [from, to] of RELAY_PROBES.slice(4)) {
    const s = await openRawSession(relay.port);
    await s.send('EHLO probe.test\r\n');
    await s.send(`MAIL FROM:<${from}>\r\n`);
    const rcpt = await s.send(`RCPT TO:<${to}>\r\n`);
    t.match(rcpt, /^5\d\d /, to);
    s.close();
  }
});

t.test('a wrong password from outside the allowed networks still cannot send', async (t) => {
  const relay = await relayWith('allowUnauthenticatedFrom: []');
  t.match(await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', auth: { user: 'app', pass: 'wrong' } })), /^535 /);
  t.match((await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', auth: { user: 'app', pass: 'right' } })).response, /^250 /);
});
