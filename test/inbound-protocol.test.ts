// The SMTP protocol as the relay's inbound layer speaks it (relay/inbound/smtp): commands in the wrong
// order, AUTH LOGIN's exchange, clients that guess commands or send web requests, idle clients, and a
// message whose bytes arrive one at a time. Each refusal is a reply with an enhanced code from the table.
import t from 'tap';
import { hashPassword } from '../relay/inbound/passwords.js';
import { SmtpListener } from '../relay/inbound/smtp/listener.js';
import { startTestRelay } from './helpers/relay.js';
import { openRawSession, writeByteByByte } from './helpers/smtp-client.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const upstream = await startUpstream();
const hash = await hashPassword('right');
const relay = await startTestRelay(`
inbound: { users: [{ username: app, passwordHash: "${hash}" }], idleTimeoutSeconds: 1, authFailureDelaySeconds: 0.01 }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`);
t.teardown(async () => {
  await relay.close();
  await upstream.close();
});

async function session() {
  const s = await openRawSession(relay.port);
  t.teardown(() => s.close());
  return s;
}
const b64 = (s: string) => Buffer.from(s).toString('base64');

t.test('commands out of order are refused with 503, and the session goes on', async (t) => {
  const s = await session();
  t.match(await s.send('MAIL FROM:<a@example.com>\r\n'), /^503 5\.5\.1 Send EHLO or HELO first/);
  t.match(await s.send('EHLO\r\n'), /^501 5\.5\.4 /, 'EHLO without a name');
  t.match(await s.send('EHLO client.test\r\n'), /^250-/);
  t.match(await s.send('RCPT TO:<b@example.com>\r\n'), /^503 5\.5\.1 Send MAIL FROM first/);
  t.match(await s.send('DATA\r\n'), /^503 5\.5\.1 /);
  t.match(await s.send('MAIL FROM:<a@example.com>\r\n'), /^250 2\.1\.0 /);
  t.match(await s.send('MAIL FROM:<a@example.com>\r\n'), /^503 5\.5\.1 A transaction is already open/);
  t.match(await s.send('DATA\r\n'), /^503 5\.5\.1 Send RCPT TO first/);
  t.match(await s.send('RSET\r\n'), /^250 2\.0\.0 /);
  t.match(await s.send('MAIL FROM:<a@example.com> SIZE=1 SIZE=2\r\n'), /^501 5\.5\.4 Duplicate SIZE parameter/);
  t.match(await s.send('MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n'), /^501 5\.5\.4 BODY must be/);
  t.match(await s.send('NOOP\r\n'), /^250 2\.0\.0 /);
  t.match(await s.send('VRFY\r\n'), /^501 5\.5\.4 /);
  t.match(await s.send('VRFY someone\r\n'), /^252 2\.1\.5 /);
});

t.test('AUTH LOGIN asks for the name and the password; a wrong one is 535, a right one 235; * cancels', async (t) => {
  const s = await session();
  await s.send('EHLO client.test\r\n');
  t.match(await s.send('AUTH LOGIN\r\n'), /^334 VXNlcm5hbWU6/);
  t.match(await s.send('*\r\n'), /^501 5\.0\.0 Authentication aborted/);
  t.match(await s.send(`AUTH LOGIN ${b64('app')}\r\n`), /^334 UGFzc3dvcmQ6/);
  t.match(await s.send(`${b64('wrong')}\r\n`), /^535 5\.7\.8 /);
  t.match(await s.send('AUTH PLAIN\r\n'), /^334$/, 'an empty challenge');
  t.match(await s.send(`${b64('\0app\0right')}\r\n`), /^235 2\.7\.0 /);
  t.match(await s.send(`AUTH PLAIN ${b64('\0app\0right')}\r\n`), /^503 5\.5\.1 Already authenticated/);
  t.match(await s.send('AUTH CRAM-MD5\r\n'), /^50[34] /);
});

t.test('AUTH offers only PLAIN and LOGIN, and a malformed token is 501', async (t) => {
  const s = await session();
  await s.send('EHLO client.test\r\n');
  t.match(await s.send('AUTH XOAUTH2 abc\r\n'), /^504 5\.5\.4 /);
  t.match(await s.send(`AUTH PLAIN ${b64('no-nul-here')}\r\n`), /^501 5\.5\.2 /);
  t.match(await s.send('AUTH PLAIN a b\r\n'), /^501 5\.5\.2 /);
});

t.test('a client guessing commands is closed at the tenth unknown one', async (t) => {
  const s = await session();
  for (let i = 1; i < 10; i++) t.match(await s.send(`XYZZY${i}\r\n`), /^500 5\.5\.2 Command not recognized/);
  t.match(await s.send('XYZZY10\r\n'), /^421 4\.7\.0 Too many unrecognized commands/);
  t.match(await s.send('NOOP\r\n'), /^closed/);
});

t.test('a web request sent to the SMTP port is answered 421 and closed', async (t) => {
  const s = await session();
  t.match(await s.send('GET / HTTP/1.1\r\nHost: relay\r\n\r\n'), /^421 4\.7\.0 This is an SMTP server/);
  t.match(await s.send('NOOP\r\n'), /^closed/);
});

t.test('a client idle past idleTimeoutSeconds is told 421 4.4.2 and closed', async (t) => {
  const s = await session();
  await s.send('EHLO client.test\r\n');
  const started = Date.now();
  t.match(await s.reply(), /^421 4\.4\.2 Idle too long/);
  t.ok(Date.now() - started >= 800, 'after about a second');
});

t.test('a message whose bytes arrive one at a time, dots and all, arrives whole', async (t) => {
  const s = await session();
  await s.send('EHLO client.test\r\n');
  await s.send('MAIL FROM:<a@example.com>\r\n');
  await s.send('RCPT TO:<b@example.com>\r\n');
  t.match(await s.send('DATA\r\n'), /^354 /);
  const before = upstream.received.length;
  const body = 'Subject: drip\r\n\r\n.leading dot\r\n..two\r\nend\r\n';
  const stuffed = body.replace(/^\./gm, '..');
  t.match(await writeByteByByte(s, `${stuffed}.\r\n`), /^250 /);
  t.ok(await until(() => upstream.received.length > before, 5_000), 'forwarded');
  t.match(upstream.received.at(-1)?.raw.toString('latin1') ?? '', /\r\n\r\n\.leading dot\r\n\.\.two\r\nend\r\n$/);
});

t.test('a client gone right after its final dot: the queued message is still delivered, logged and traced as accepted', async (t) => {
  const queued = await startTestRelay(`
delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`);
  t.teardown(() => queued.close());
  const s = await openRawSession(queued.port);
  await s.send('EHLO client.test\r\n');
  await s.send('MAIL FROM:<a@example.com>\r\n');
  await s.send('RCPT TO:<gone-client@example.com>\r\n');
  t.match(await s.send('DATA\r\n'), /^354 /);
  // The dot, and the connection closed before the relay's 250 can be read.
  s.write('Subject: gone\r\n\r\nbye\r\n.\r\n');
  s.close();
  t.ok(await until(() => upstream.received.some((m) => m.rcptTo.includes('gone-client@example.com')), 10_000), 'delivered');
  t.ok(await until(() => queued.logs.some((l) => l.event === 'queued'), 5_000), "the 'queued' line, told after the reply that nobody read");
});

t.test("a handler's bug is answered 451 (or 421 and closed) and logged; the listener goes on serving", async (t) => {
  const faults: string[] = [];
  const listener = new SmtpListener(
    {
      name: 'faulty.test',
      tls: 'none',
      auth: 'offered',
      limits: { size: 1024, maxClients: 10, maxRecipients: 10, idleTimeoutMs: 5_000 },
      greetingDelayMs: () => 0,
      reverse: (_ip, done) => done(null, []),
      onError: () => {},
      fault: (err) => faults.push(err.message),
    },
    {
      connect: () => undefined,
      auth: () => {
        throw new Error('auth bug');
      },
      mailFrom: () => undefined,
      rcptTo: (_s, to) => {
        if (to.address.startsWith('bug')) throw new Error('rcpt bug');
        return undefined;
      },
      data: () => {
        throw new Error('data bug');
      },
      closed: () => {
        throw new Error('closed bug');
      },
    },
  );
  const { port } = await listener.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => listener.closeWithin(100));
  const s = await openRawSession(port);
  t.teardown(() => s.close());
  await s.send('EHLO client.test\r\n');
  t.match(await s.send(`AUTH PLAIN ${b64('\0app\0pw')}\r\n`), /^451 4\.3\.0 /);
  await s.send('MAIL FROM:<a@example.com>\r\n');
  t.match(await s.send('RCPT TO:<bug@example.com>\r\n'), /^451 4\.3\.0 /);
  t.match(await s.send('RCPT TO:<fine@example.com>\r\n'), /^250 /, 'the session goes on');
  t.match(await s.send('DATA\r\n'), /^354 /);
  // Larger than the message stream holds (256 KiB): nobody reads it, and it must not stall the session.
  t.match(await s.send(`Subject: x\r\n\r\n${'a body line of a larger message\r\n'.repeat(12_000)}.\r\n`), /^451 4\.3\.0 /, 'read to the dot, then answered');
  t.match(await s.send('QUIT\r\n'), /^221 /);
  t.ok(await until(() => faults.includes('closed bug'), 5_000));
  t.same(faults.filter((f) => f !== 'closed bug'), ['auth bug', 'rcpt bug', 'data bug']);
  const again = await openRawSession(port);
  t.teardown(() => again.close());
  t.match(again.greeting, /^220 faulty\.test /, 'a new client is served');
});
