// BDAT (RFC 3030) to an upstream that offers CHUNKING (Postfix, Microsoft 365, Gmail): the message counted
// instead of dot-ended, the same message DATA would carry, a small one in the envelope's own write (one
// round trip for the whole transaction), and every refusal leaving the connection in a known state.
// Upstreams are bare scripted servers on loopback sockets that read BDAT by its size.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { UpstreamPools } from '../relay/delivery/pools.js';
import { sendViaSmtp } from '../relay/delivery/smtp.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { refusingGoneRecipients, type ScriptedServer as Script, scriptedUpstream, startScriptedServer } from './helpers/upstream.js';

const CHUNKING = ['PIPELINING', '8BITMIME', 'CHUNKING'];
const envelope = { mailFrom: 'app@example.com', rcptTo: ['one@example.net', 'two@example.net'] };
const message = Buffer.from('Subject: hello\r\n\r\nbody\r\n');

async function setUp(t: Test, script: Script = {}) {
  const up = await startScriptedServer({ ehlo: CHUNKING, ...script });
  const pools = new UpstreamPools('relay.test');
  t.teardown(async () => {
    pools.close();
    await up.close();
  });
  return { up, pools, send: (body: Buffer | { path: string } = message, env = envelope) => sendViaSmtp(pools, scriptedUpstream(up.port), env, body) };
}

function tempFile(t: Test, bytes: Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-bdat-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'message.eml');
  fs.writeFileSync(file, bytes);
  return file;
}

/** A message as a DATA receiver reads it: the dots doubled at line starts made single again. */
const unstuffed = (data: string) => data.replace(/(^|\r\n)\.\./g, '$1.');

t.test('a small message goes with its envelope: MAIL, RCPT and BDAT LAST with the bytes, in one write, no DATA', async (t) => {
  const { up, send } = await setUp(t);
  const sent = await send();
  t.same(
    sent.outcomes.map((o) => o.status),
    ['sent', 'sent'],
  );
  const session = up.sessions[0];
  t.equal(session?.commandChunks.find((c) => c.startsWith('MAIL')), `MAIL FROM:<app@example.com>\r\nRCPT TO:<one@example.net>\r\nRCPT TO:<two@example.net>\r\nBDAT ${message.length} LAST\r\n${message.toString('latin1')}`);
  t.notOk(session?.lines.includes('DATA'));
  t.same(session?.messages, [message.toString('latin1')]);
});

t.test('BDAT carries the message DATA would: line ends made CRLF, dots as they are, a last line end added', async (t) => {
  const cases = [
    'Subject: x\r\n\r\nhello\r\n.\r\n..two\r\n',
    '.at the start\r\n',
    'bare\nLF\n.dot\n',
    'bare\rCR\r.dot\r',
    'x\r\n\n.\n\r\nMAIL FROM:<a@b>\r\n',
    'no final line end',
    'ends with a bare CR\r',
    `Subject: big\r\n\r\n${'a line of a longer message\r\n.b\n'.repeat(6000)}`,
  ];
  const chunked = await setUp(t);
  const dotted = await setUp(t, { ehlo: ['PIPELINING', '8BITMIME'] });
  for (const text of cases) {
    const bytes = Buffer.from(text, 'latin1');
    for (const body of [bytes, { path: tempFile(t, bytes) }]) {
      const how = `${JSON.stringify(text.slice(0, 24))} (${Buffer.isBuffer(body) ? 'in memory' : 'a file'}, ${bytes.length} bytes)`;
      t.equal((await chunked.send(body)).outcomes[0]?.status, 'sent', how);
      t.equal((await dotted.send(body)).outcomes[0]?.status, 'sent', how);
      t.equal(chunked.up.sessions[0]?.messages.at(-1), unstuffed(dotted.up.sessions[0]?.messages.at(-1) ?? ''), `${how}: the same message`);
    }
  }
  const large = chunked.up.sessions[0]?.lines.filter((l) => l.startsWith('BDAT')).slice(-3) ?? [];
  t.ok(large.length > 1 && !large[0]?.endsWith('LAST') && large.at(-1)?.endsWith('LAST'), `a large file in chunks, the last one LAST: ${large.join(', ')}`);
});

t.test('a message over 64 KB waits for its envelope: a recipient refused costs no upload', async (t) => {
  const { up, send } = await setUp(t, { onLine: (line, s) => line.startsWith('RCPT') && (s.socket.write('550 5.1.1 no such user\r\n'), true) });
  const big = Buffer.from(`Subject: big\r\n\r\n${'x'.repeat(76)}\r\n`.repeat(1000));
  const refused = await send(big);
  t.same(
    refused.outcomes.map((o) => o.status),
    ['perm', 'perm'],
  );
  t.notOk(
    up.sessions[0]?.lines.some((l) => l.startsWith('BDAT')),
    'no BDAT',
  );
  t.ok(up.sessions[0]?.lines.includes('RSET'));
});

t.test('every recipient refused: the BDAT sent with them is refused too, RSET, and the next message goes on the same connection', async (t) => {
  const { up, send } = await setUp(t, { onLine: refusingGoneRecipients() });
  const refused = await send(message, { mailFrom: 'app@example.com', rcptTo: ['gone@example.net'] });
  t.equal(refused.outcomes[0]?.status, 'perm');
  t.match(refused.outcomes[0]?.reply.text, /no such user/);
  t.equal((await send()).outcomes[0]?.status, 'sent');
  t.equal(up.sessions.length, 1, 'one connection for both');
  t.same(up.sessions[0]?.messages, [message.toString('latin1')], 'only the second message was taken');
  t.ok(up.sessions[0]?.lines.includes('RSET'));
});

t.test('a server that takes the message after refusing every recipient loses the connection', async (t) => {
  const { up, send } = await setUp(t, { onLine: (line, s) => line.startsWith('RCPT') && (s.socket.write('550 5.1.1 no such user\r\n'), true) });
  t.same(
    (await send()).outcomes.map((o) => o.status),
    ['perm', 'perm'],
  );
  t.equal((await send()).outcomes[0]?.status, 'perm');
  t.equal(up.sessions.length, 2, 'the next message on a new connection');
});

t.test('the LAST chunk refused fails the message as its code says; RSET, and the connection carries the next', async (t) => {
  let refuse = true;
  const { up, send } = await setUp(t, { onLine: (line, s) => line.startsWith('BDAT') && refuse && (s.socket.write('554 5.7.1 content refused\r\n'), true) });
  const refused = await send();
  t.same(
    refused.outcomes.map((o) => o.status),
    ['perm', 'perm'],
  );
  t.match(refused.outcomes[0]?.reply.text, /content refused/);
  refuse = false;
  t.equal((await send()).outcomes[0]?.status, 'sent');
  t.equal(up.sessions.length, 1);
  t.ok(up.sessions[0]?.lines.includes('RSET'));
});

t.test('a chunk answered with a 354 (a server that thinks it is in DATA) loses the connection: no RSET is written into it', async (t) => {
  let odd = true;
  const { up, send } = await setUp(t, { onLine: (line, s) => line.startsWith('BDAT') && odd && (s.socket.write('354 go ahead\r\n'), true) });
  t.equal((await send()).outcomes[0]?.status, 'temp');
  t.notOk(up.sessions[0]?.lines.includes('RSET'));
  odd = false;
  t.equal((await send()).outcomes[0]?.status, 'sent');
  t.equal(up.sessions.length, 2, 'the next message on a new connection');
});

t.test('without PIPELINING each chunk of a file is answered before the next; one refused halfway ends the upload', async (t) => {
  let chunks = 0;
  const { up, send } = await setUp(t, {
    ehlo: ['8BITMIME', 'CHUNKING'],
    onLine: (line, s) => {
      if (!line.startsWith('BDAT')) return false;
      if (++chunks < 2) return false;
      s.socket.write('452 4.3.1 insufficient system storage\r\n');
      return true;
    },
  });
  const file = tempFile(t, Buffer.from(`Subject: big\r\n\r\n${`${'y'.repeat(76)}\r\n`.repeat(4000)}`));
  const result = await send({ path: file });
  t.equal(result.outcomes[0]?.status, 'temp');
  t.match(result.outcomes[0]?.reply.text, /insufficient system storage/);
  t.equal(up.sessions[0]?.lines.filter((l) => l.startsWith('BDAT')).length, 2, 'no chunk after the refused one');
  t.ok(up.sessions[0]?.lines.includes('RSET'));
  chunks = -100;
  t.equal((await send()).outcomes[0]?.status, 'sent', 'and the connection carries the next message');
  t.equal(up.sessions.length, 1);
});

t.test('an upstream set to chunking: false gets DATA even when it offers CHUNKING; it has pools of its own', async (t) => {
  const { up, pools } = await setUp(t);
  const dataOnly = scriptedUpstream(up.port, { chunking: false });
  t.equal((await sendViaSmtp(pools, dataOnly, envelope, message)).outcomes[0]?.status, 'sent');
  t.equal((await sendViaSmtp(pools, scriptedUpstream(up.port), envelope, message)).outcomes[0]?.status, 'sent');
  t.equal(up.sessions.length, 2, 'a connection for each setting');
  t.ok(up.sessions[0]?.lines.includes('DATA'));
  t.notOk(up.sessions[0]?.lines.some((l) => l.startsWith('BDAT')));
  t.ok(up.sessions[1]?.lines.some((l) => l.startsWith('BDAT')));
  t.same(up.sessions[0]?.messages, up.sessions[1]?.messages);
});

t.test('the connection lost once the LAST chunk went out: the message may have arrived', async (t) => {
  const { send } = await setUp(t, { afterDot: 'drop' });
  const lost = await send();
  t.match(lost.outcomes, [{ status: 'temp', mayHaveArrived: true }]);
});

for (const mode of ['passthrough', 'queue'] as const) {
  t.test(`through the relay (${mode}): a small message and one past the memory limit (a file with the header in front) arrive whole by BDAT`, async (t) => {
    const up = await startScriptedServer({ ehlo: CHUNKING });
    t.teardown(() => up.close());
    const relay = await startTestRelay(`delivery: { mode: ${mode}, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${up.port}, tls: none }\n`);
    t.teardown(() => relay.close());
    const bodies = [`Hello.\r\n.a dot line\r\n`, `${'a line of a large message, with a dot at the end.\r\n.\r\n'.repeat(30_000)}`];
    for (const body of bodies) {
      const raw = `From: <app@example.org>\r\nTo: <one@example.com>\r\nSubject: chunked\r\n\r\n${body}`;
      t.match((await sendThrough(relay.port, { from: 'app@example.org', to: 'one@example.com', raw })).response, /^250 /);
    }
    for (let i = 0; i < 100 && (up.sessions.flatMap((s) => s.messages).length < 2); i++) await new Promise((r) => setTimeout(r, 50));
    const arrived = up.sessions.flatMap((s) => s.messages);
    t.equal(arrived.length, 2);
    bodies.forEach((body, i) => t.ok(arrived[i]?.endsWith(`Subject: chunked\r\n\r\n${body}`), `message ${i + 1}: the header the relay wrote, then the body as sent`));
    t.ok(up.sessions.flatMap((s) => s.lines).filter((l) => l.startsWith('BDAT')).length > 2, 'the large one in several chunks');
    t.notOk(up.sessions.flatMap((s) => s.lines).includes('DATA'));
  });
}
