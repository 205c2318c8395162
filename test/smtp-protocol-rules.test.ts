// The inbound SMTP layer's pure rules, table-driven: where DATA ends and which dots are removed (at
// every split of the bytes into chunks), and how MAIL FROM / RCPT TO lines and AUTH PLAIN read.
import t from 'tap';
import { decodePlain, heloName, isHttpRequest, mailParameterProblem, parseAddressLine, verbOf } from '../relay/inbound/smtp/command-line.js';
import { DotReader } from '../relay/inbound/smtp/dot-reader.js';

/** Feeds `wire` in the given chunks: the message kept and what followed the end, or undefined if it never ended. */
function read(chunks: string[]): { message: string; rest: string | undefined } {
  const reader = new DotReader();
  const kept: Buffer[] = [];
  let rest: string | undefined;
  for (const chunk of chunks) {
    if (rest !== undefined) {
      rest += chunk;
      continue;
    }
    const after = reader.feed(Buffer.from(chunk, 'latin1'), (part) => kept.push(Buffer.from(part)));
    if (after !== undefined) rest = after.toString('latin1');
  }
  const message = Buffer.concat(kept).toString('latin1');
  t.equal(reader.bytes, Buffer.byteLength(message, 'latin1'), 'bytes counts what was kept');
  return { message, rest };
}

const cases: { name: string; wire: string; message: string; rest?: string }[] = [
  { name: 'a plain message', wire: 'Subject: a\r\n\r\nbody\r\n.\r\n', message: 'Subject: a\r\n\r\nbody\r\n', rest: '' },
  { name: 'an empty message', wire: '.\r\n', message: '', rest: '' },
  { name: 'commands pipelined after the dot', wire: 'x\r\n.\r\nQUIT\r\n', message: 'x\r\n', rest: 'QUIT\r\n' },
  { name: 'a stuffed dot is removed', wire: 'a\r\n..b\r\n.\r\n', message: 'a\r\n.b\r\n', rest: '' },
  { name: 'a stuffed dot at the start', wire: '..a\r\n.\r\n', message: '.a\r\n', rest: '' },
  { name: 'a line of two dots', wire: 'a\r\n...\r\n.\r\n', message: 'a\r\n..\r\n', rest: '' },
  { name: 'a dot inside a line stays', wire: 'a.b\r\n.c\r\n.\r\n', message: 'a.b\r\n.c\r\n', rest: '' },
  { name: 'bare LF dot LF is no end (smuggling)', wire: 'a\n.\nMAIL FROM:<x@y>\n.\r\n', message: 'a\n.\nMAIL FROM:<x@y>\n.\r\n' },
  { name: 'bare LF dot CRLF is no end (smuggling)', wire: 'a\n.\r\nb\r\n.\r\n', message: 'a\n.\r\nb\r\n', rest: '' },
  { name: 'CR dot CRLF is no end', wire: 'a\r.\r\nb\r\n.\r\n', message: 'a\r.\r\nb\r\n', rest: '' },
  { name: 'CRLF dot LF is no end', wire: 'a\r\n.\nb\r\n.\r\n', message: 'a\r\n.\nb\r\n', rest: '' },
  { name: 'a stuffed dot after a bare LF is removed (as smtp-server did)', wire: 'a\n..b\r\n.\r\n', message: 'a\n.b\r\n', rest: '' },
  { name: 'no end yet', wire: 'a\r\nb\r\n.', message: 'a\r\nb\r\n' },
];

for (const c of cases) {
  t.test(`${c.name}, at every split into two and three chunks`, async (t) => {
    const whole = read([c.wire]);
    t.same(whole, { message: c.message, rest: c.rest }, 'one chunk');
    for (let i = 0; i <= c.wire.length; i++) {
      t.same(read([c.wire.slice(0, i), c.wire.slice(i)]), whole, `split at ${i}`);
      for (let j = i; j <= c.wire.length; j++) t.same(read([c.wire.slice(0, i), c.wire.slice(i, j), c.wire.slice(j)]), whole, `split at ${i} and ${j}`);
    }
    t.same(read([...c.wire]), whole, 'a byte at a time');
  });
}

t.test('a chunk without a dot at a line start is handed on as it is (no copy)', async (t) => {
  const chunk = Buffer.from('Subject: a\r\n\r\nno dots at line starts.\r\n');
  const kept: Buffer[] = [];
  new DotReader().feed(chunk, (p) => kept.push(p));
  t.equal(kept.length, 1);
  t.equal(kept[0]?.buffer, chunk.buffer, 'the same memory');
});

t.test('MAIL FROM and RCPT TO lines', async (t) => {
  const table: [string, 'MAIL FROM' | 'RCPT TO', unknown][] = [
    ['MAIL FROM:<a@example.com>', 'MAIL FROM', { ok: true, value: { address: 'a@example.com', args: {} } }],
    ['mail from: <a@example.com> SIZE=100 BODY=8BITMIME', 'MAIL FROM', { ok: true, value: { address: 'a@example.com', args: { SIZE: '100', BODY: '8BITMIME' } } }],
    ['MAIL FROM:<>', 'MAIL FROM', { ok: true, value: { address: '', args: {} } }],
    ['MAIL FROM:<a@b> SMTPUTF8', 'MAIL FROM', { ok: true, value: { address: 'a@b', args: { SMTPUTF8: true } } }],
    ['MAIL FROM:<a@b> ENVID=a+2Bb', 'MAIL FROM', { ok: true, value: { address: 'a@b', args: { ENVID: 'a+b' } } }],
    ['MAIL FROM:a@b', 'MAIL FROM', { ok: false, why: 'syntax' }],
    ['MAIL FROM:<a@b>x', 'MAIL FROM', { ok: false, why: 'syntax' }],
    ['MAIL FROM:<<a@b>>', 'MAIL FROM', { ok: false, why: 'syntax' }],
    ['MAIL FROM:<a\u200b@b>', 'MAIL FROM', { ok: false, why: 'syntax' }],
    ['MAIL TO:<a@b>', 'MAIL FROM', { ok: false, why: 'syntax' }],
    ['RCPT TO:<a@b>', 'MAIL FROM', { ok: false, why: 'syntax' }],
    ['MAIL FROM:<@relay.test:a@b>', 'MAIL FROM', { ok: false, why: 'source-route' }],
    ['RCPT TO: < @r.test,@s.test:x@y>', 'RCPT TO', { ok: false, why: 'source-route' }],
    ['MAIL FROM:<a@b> SIZE=1 SIZE=2', 'MAIL FROM', { ok: false, why: 'parameter', detail: 'Duplicate SIZE parameter' }],
    ['MAIL FROM:<a@b> SIZE', 'MAIL FROM', { ok: false, why: 'parameter', detail: 'The SIZE parameter needs a value' }],
    ['MAIL FROM:<a@b> ENVID=a+0Db', 'MAIL FROM', { ok: false, why: 'parameter', detail: 'The ENVID parameter has a control character' }],
    ['RCPT TO:<b@c> NOTIFY=SUCCESS', 'RCPT TO', { ok: true, value: { address: 'b@c', args: { NOTIFY: 'SUCCESS' } } }],
  ];
  for (const [line, command, expected] of table) t.same(parseAddressLine(line, command), expected, line);
});

t.test("MAIL FROM's parameters", async (t) => {
  const table: [Record<string, string | true>, string | undefined][] = [
    [{ SIZE: '100' }, undefined],
    [{ SIZE: '2049' }, 'too-big'],
    [{ SIZE: 'x' }, 'size-syntax'],
    [{ BODY: '7bit' }, undefined],
    [{ BODY: 'BINARYMIME' }, 'body'],
    [{ SMTPUTF8: true }, undefined],
    [{ SMTPUTF8: 'yes' }, 'smtputf8'],
    [{ FUTURE: 'x' }, undefined],
  ];
  for (const [args, expected] of table) t.equal(mailParameterProblem(args, 2048), expected, JSON.stringify(args));
});

t.test('verbs, EHLO names, web requests and AUTH PLAIN tokens', async (t) => {
  t.equal(verbOf('ehlo x'), 'EHLO');
  t.equal(verbOf('QUIT'), 'QUIT');
  t.equal(heloName('EHLO Client.Test'), 'client.test');
  t.equal(heloName('EHLO'), undefined);
  t.equal(heloName('EHLO a b'), undefined);
  t.equal(heloName(`EHLO ${'a'.repeat(256)}`), undefined);
  t.ok(isHttpRequest('GET / HTTP/1.1'));
  t.notOk(isHttpRequest('GET me a coffee'));
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  t.same(decodePlain(b64('\0app\0pw')), { username: 'app', password: 'pw' });
  t.same(decodePlain(b64('admin\0app\0pw')), { username: 'app', password: 'pw' });
  t.equal(decodePlain(b64('app\0pw')), undefined);
  t.equal(decodePlain(b64('\0ap\np\0pw')), undefined, 'a control character in the name');
});
