// The stuffing of a message on its way to an upstream is byte for byte nodemailer's own (its DataStream,
// which the relay's faster one stands in for): dots at line starts doubled, bare CR and bare LF made CRLF,
// whatever the chunk boundaries.
import { createRequire } from 'node:module';
import path from 'node:path';
import { PassThrough, Readable, type Transform } from 'node:stream';
import t from 'tap';
import { dotStuff } from '../relay/delivery/dot-stuffing.js';
import { withFastStuffing } from '../relay/delivery/nodemailer-seams.js';
import { fixedRandom, randomChunks } from './helpers/random.js';

// nodemailer does not export DataStream: loaded from its file, as the seam's start check does.
const require = createRequire(import.meta.url);
const DataStream = require(path.join(path.dirname(require.resolve('nodemailer/package.json')), 'dist/cjs/smtp-connection/data-stream.js')) as {
  default?: new () => Transform;
} & (new () => Transform);
const StockDataStream = DataStream.default ?? DataStream;

/** What DataStream sends for these chunks (its final dot included). */
async function stock(chunks: Buffer[]): Promise<Buffer> {
  const s = new StockDataStream();
  const out: Buffer[] = [];
  s.on('data', (c: Buffer) => out.push(c));
  const ended = new Promise((r) => s.on('end', r));
  for (const c of chunks) s.write(c);
  s.end();
  await ended;
  return Buffer.concat(out);
}

/** The same through dotStuff, with DataStream's own final dot. */
function ours(chunks: Buffer[]): Buffer {
  let last: number | false = false;
  const out: Buffer[] = [];
  for (const c of chunks) {
    if (c.length === 0) continue;
    out.push(dotStuff(c, last));
    last = c[c.length - 1] as number;
  }
  out.push(Buffer.from(last === 0x0a ? '.\r\n' : last === 0x0d ? '\n.\r\n' : '\r\n.\r\n'));
  return Buffer.concat(out);
}

const cases: [string, string][] = [
  ['plain lines', 'Subject: x\r\n\r\nhello\r\nworld\r\n'],
  ['a dot at the start of the message', '.hidden\r\n'],
  ['a line that is one dot', 'a\r\n.\r\nb\r\n'],
  ['dots mid-line are left alone', 'a.b\r\n x.\r\n'],
  ['bare LF', 'a\nb\n.c\n'],
  ['bare CR', 'a\rb\r.c\r'],
  ['CR CR LF', 'a\r\r\nb'],
  ['LF CR', 'a\n\rb'],
  ['the smuggling form', 'x\r\n\n.\n\r\nMAIL FROM:<a@b>\r\n'],
  ['CR dot CR', 'x\r.\r\ny'],
  ['no final line end', 'last line'],
  ['empty', ''],
];

t.test('each form of line end and dot comes out as DataStream makes it', async (t) => {
  for (const [name, text] of cases) {
    const b = Buffer.from(text, 'latin1');
    t.same(ours([b]), await stock([b]), `${name}: one chunk`);
    for (let cut = 1; cut < b.length; cut++) t.same(ours([b.subarray(0, cut), b.subarray(cut)]), await stock([b.subarray(0, cut), b.subarray(cut)]), `${name}: cut at ${cut}`);
  }
});

t.test('random messages of CR, LF, dots and text, cut at random: always the same bytes', async (t) => {
  // Bounded: a fixed number of cases from a fixed seed.
  const random = fixedRandom(12345);
  let mismatches = 0;
  for (let n = 0; n < 3000; n++) {
    const chunks = randomChunks(random, [0x0d, 0x0a, 0x2e, 0x61, 0x20, 0x00], 40, 8);
    if (!ours(chunks).equals(await stock(chunks))) mismatches++;
  }
  t.equal(mismatches, 0);
});

t.test('a chunk with nothing to change is passed on as it is, not copied', async (t) => {
  const b = Buffer.from('Subject: x\r\n\r\nhello\r\n');
  t.equal(dotStuff(b, false), b);
});

t.test("the DataStream our message is piped into stuffs with dotStuff, and sends what nodemailer's would", async (t) => {
  const message = Buffer.from('Subject: x\r\n\r\n.leading dot\r\nline\r\n..two\r\n');
  const fast = new StockDataStream();
  const out: Buffer[] = [];
  fast.on('data', (c: Buffer) => out.push(c));
  const ended = new Promise((r) => fast.on('end', r));
  withFastStuffing(Readable.from([message])).pipe(fast);
  await ended;
  t.ok(Object.hasOwn(fast, '_transform'), 'this one stream has the faster transform');
  t.notOk(Object.hasOwn(new StockDataStream(), '_transform'), 'DataStream itself is unchanged');
  t.same(Buffer.concat(out), await stock([message]));
});

t.test('a destination that is not a fresh DataStream is piped to as it is', async (t) => {
  const other = new PassThrough();
  withFastStuffing(Readable.from([Buffer.from('x')])).pipe(other);
  t.notOk(Object.hasOwn(other, '_transform'));
});

t.test("a small message's last bytes and the final dot leave as one chunk: one write to the upstream, not two", async (t) => {
  const large = Buffer.from(`Subject: x\r\n\r\n${'a line of text\r\n'.repeat(2000)}`);
  for (const chunks of [[Buffer.from('Subject: x\r\n\r\nhello\r\n')], [Buffer.from('Subject: x\r\n\r\n'), Buffer.from('.a\r\n'), Buffer.from('no line end')], [], [large]]) {
    const fast = new StockDataStream();
    const out: Buffer[] = [];
    fast.on('data', (c: Buffer) => out.push(c));
    const ended = new Promise((r) => fast.on('end', r));
    withFastStuffing(Readable.from(chunks)).pipe(fast);
    await ended;
    if (chunks[0] === large) t.equal(out.length, 2, 'a large last chunk is not copied to join the dot: it goes on its own');
    else t.equal(out.length, Math.max(1, chunks.length), `${chunks.length} chunks in, as many out, the dot with the last`);
    t.same(Buffer.concat(out), await stock(chunks));
    t.equal((fast as unknown as { outByteCount: number }).outByteCount, Buffer.concat(out).length, 'the byte count nodemailer logs is still right');
  }
});
