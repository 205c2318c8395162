// SMTP smuggling (SCENARIOS 11-12): end-of-data lookalikes followed by a forged second transaction,
// sent whole and byte by byte, over plaintext and STARTTLS. With the default policy the message is
// refused (550 5.5.2); with normalize it is repaired; either way one transaction never becomes two and
// the upstream never sees a bare CR, bare LF or NUL.
import t from 'tap';
import { makeTestCerts } from './helpers/certs.js';
import { startTestRelay } from './helpers/relay.js';
import { openDataSession, openRawSession, type RawSession, writeByteByByte } from './helpers/smtp-client.js';
import { startUpstream } from './helpers/upstream.js';

const certs = makeTestCerts();
const upstream = await startUpstream();
const relayFor = (mode: string) =>
  startTestRelay(`
listen: [{ host: 127.0.0.1, port: 0, tls: starttls, cert: ${certs.dir}/server.pem, key: ${certs.dir}/server.key }]
inbound: { bareLineEndings: ${mode} }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`);
const reject = await relayFor('reject');
const normalize = await relayFor('normalize');
t.teardown(async () => {
  await Promise.all([reject.close(), normalize.close()]);
  await upstream.close();
});

const LOOKALIKES = ['\n.\n', '\n.\r', '\r.\n', '\r.\r', '\n.\r\n', '\r.\r\n', '\r\n.\n', '\r\n.\r', '\r\n\x00.\r\n'];
const SMUGGLED = 'MAIL FROM:<ceo@bank.test>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nFrom: ceo@bank.test\r\nSubject: smuggled\r\n\r\nwire the money\r\n';

/** No CR without LF after it, no LF without CR before it, no NUL. */
const hasBareLineEnding = (b: Buffer) => /\r(?!\n)|(?<!\r)\n|\x00/.test(b.toString('latin1'));

async function transaction(s: RawSession, data: string, byteByByte: boolean): Promise<string> {
  await s.send('MAIL FROM:<app@example.com>\r\n');
  await s.send('RCPT TO:<user@example.com>\r\n');
  t.match(await s.send('DATA\r\n'), /^354 /);
  return byteByByte ? writeByteByByte(s, data) : s.send(data);
}

for (const transport of ['plaintext', 'STARTTLS'] as const) {
  for (const byteByByte of [false, true]) {
    const how = `${transport}, ${byteByByte ? 'byte by byte' : 'in one write'}`;
    t.test(`reject: every lookalike is refused with 550 5.5.2 and nothing is smuggled (${how})`, async (t) => {
      for (const lookalike of LOOKALIKES) {
        const before = upstream.received.length;
        const s = await openRawSession(reject.port, transport === 'STARTTLS' ? { starttlsCa: certs.ca } : {});
        await s.send('EHLO client.test\r\n');
        const reply = await transaction(s, `From: app@example.com\r\nSubject: hello\r\n\r\nbody${lookalike}${SMUGGLED}.\r\n`, byteByByte);
        t.match(reply, /^550 5\.5\.2 /, JSON.stringify(lookalike));
        t.match(await s.send('NOOP\r\n'), /^250 /, 'the session is in a clean state afterwards');
        s.close();
        t.equal(upstream.received.length, before, `nothing forwarded for ${JSON.stringify(lookalike)}`);
      }
    });

    t.test(`normalize: one message, repaired, no second transaction (${how})`, async (t) => {
      for (const lookalike of LOOKALIKES) {
        const before = upstream.received.length;
        const s = await openRawSession(normalize.port, transport === 'STARTTLS' ? { starttlsCa: certs.ca } : {});
        await s.send('EHLO client.test\r\n');
        const reply = await transaction(s, `From: app@example.com\r\nSubject: hello\r\n\r\nbody${lookalike}${SMUGGLED}.\r\n`, byteByByte);
        t.match(reply, /^250 /, JSON.stringify(lookalike));
        s.close();
        const arrived = upstream.received.slice(before);
        t.equal(arrived.length, 1, `exactly one message for ${JSON.stringify(lookalike)}`);
        t.same(arrived[0]?.rcptTo, ['user@example.com'], 'the envelope of the real transaction only');
        t.notOk(hasBareLineEnding(arrived[0]?.raw ?? Buffer.alloc(0)), 'no bare CR/LF/NUL upstream');
        t.notOk(upstream.received.some((m) => m.rcptTo.includes('victim@example.com')), 'the forged transaction never happened');
      }
    });
  }
}

t.test('dot-stuffing round trip: dot lines arrive upstream exactly as the author wrote them', async (t) => {
  const lines = ['.', '..', '.foo', '...', 'end'];
  const authored = `.starts with a dot\r\nSubject: dots\r\n\r\n${lines.join('\r\n')}\r\n`;
  // On the wire a client doubles every leading dot (RFC 5321 4.5.2).
  const stuffed = authored.replace(/^\./gm, '..');
  const before = upstream.received.length;
  const { session: s } = await openDataSession(reject.port, 'app@example.com', 'user@example.com');
  // Split so that a dot lands right after a TCP chunk boundary.
  const cut = stuffed.indexOf('\r\n..\r\n') + 2;
  s.write(stuffed.slice(0, cut));
  await new Promise((r) => setTimeout(r, 20));
  t.match(await s.send(`${stuffed.slice(cut)}.\r\n`), /^250 /);
  s.close();
  t.equal(upstream.received.length, before + 1);
  const got = upstream.received.at(-1)?.raw.toString('latin1') ?? '';
  t.ok(got.endsWith(authored), 'the body is what the author wrote');
});

t.test('message content sent before the 354 (in the same write as DATA) is refused with 554 5.5.0 and the connection closed', async (t) => {
  const before = upstream.received.length;
  const s = await openRawSession(reject.port);
  t.teardown(() => s.close());
  await s.send('EHLO client.test\r\n');
  await s.send('MAIL FROM:<app@example.com>\r\n');
  await s.send('RCPT TO:<user@example.com>\r\n');
  t.match(await s.send('DATA\r\nSubject: early\r\n\r\ntoo soon\r\n.\r\n'), /^554 5\.5\.0 Improper pipelining/);
  t.match(await s.send('NOOP\r\n'), /^closed/);
  t.equal(upstream.received.length, before);
});

t.test('a client that pipelines MAIL, RCPT and DATA and then waits for the 354 is fine', async (t) => {
  const s = await openRawSession(reject.port);
  t.teardown(() => s.close());
  await s.send('EHLO client.test\r\n');
  s.write('MAIL FROM:<app@example.com>\r\nRCPT TO:<user@example.com>\r\nDATA\r\n');
  const replies = [await s.reply(), await s.reply(), await s.reply()];
  t.match(replies, [/^250 /, /^250 /, /^354 /]);
  t.match(await s.send('Subject: ok\r\n\r\nfine\r\n.\r\n'), /^250 /);
});
