// The stuffing of a message on its way to an upstream is byte for byte nodemailer's own (its DataStream,
// which the relay's faster one stands in for): dots at line starts doubled, bare CR and bare LF made CRLF,
// whatever the chunk boundaries.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Transform } from 'node:stream';
import t from 'tap';
import type { SmtpUpstream } from '../config/types.js';
import { dotStuff, Stuffing } from '../relay/delivery/dot-stuffing.js';
import { UpstreamPools } from '../relay/delivery/pools.js';
import { sendViaSmtp } from '../relay/delivery/smtp.js';
import { fixedRandom, randomChunks } from './helpers/random.js';
import { startScriptedServer } from './helpers/upstream.js';

// nodemailer does not export DataStream: loaded from its file, as the reference the relay's stuffing is held to.
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

/** CRLF-only messages (what the intake lets through), cut at random: lines of dots, text and nothing. */
function crlfOnlyChunks(random: () => number): Buffer[] {
  const lines = Array.from({ length: Math.floor(random() * 12) }, () => ['', '.', '..', '.a', 'a.', 'a', ' .'][Math.floor(random() * 7)] ?? '');
  const bytes = Buffer.from(lines.map((l) => `${l}\r\n`).join(''));
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = 1 + Math.floor(random() * 6);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

t.test('a message whose line ends the intake checked is stuffed alike: only its dots are looked for', async (t) => {
  const random = fixedRandom(20261206);
  let mismatches = 0;
  for (let n = 0; n < 3000; n++) {
    const chunks = crlfOnlyChunks(random);
    const checked = new Stuffing(true, true);
    const out = Buffer.concat([...chunks.map((c) => checked.next(c)), checked.lineEnd(), Buffer.from('.\r\n')]);
    if (!out.equals(await stock(chunks))) mismatches++;
  }
  t.equal(mismatches, 0);
  const plain = Buffer.from('Subject: x\r\n\r\nhello\r\n');
  t.equal(dotStuff(plain, false, true, true), plain, 'nothing to change: the chunk itself');
});

t.test('a chunk with nothing to change is passed on as it is, not copied', async (t) => {
  const b = Buffer.from('Subject: x\r\n\r\nhello\r\n');
  t.equal(dotStuff(b, false), b);
});

const upstreamAt = (port: number): SmtpUpstream => ({ kind: 'smtp', owner: 'platform', name: 'capture', host: '127.0.0.1', port, tls: 'none', allowInsecureAuth: false, timeoutMs: 5000, connectTimeoutMs: 2000, maxConnections: 1 });
const envelope = { mailFrom: 'a@example.com', rcptTo: ['b@example.com'] };

t.test("the upstream gets DataStream's bytes, and a small message's last bytes with the final dot in one write", async (t) => {
  const up = await startScriptedServer();
  const pools = new UpstreamPools('relay.test');
  t.teardown(async () => {
    pools.close();
    await up.close();
  });
  const large = Buffer.from(`Subject: x\r\n\r\n${'a line of text\r\n'.repeat(2000)}`);
  const messages: Buffer[][] = [[Buffer.from('Subject: x\r\n\r\nhello\r\n')], [Buffer.from('Subject: x\r\n\r\n'), Buffer.from('.a\r\n'), Buffer.from('no line end')], [Buffer.from('Subject: x\r\n\r\n.\r\n..\r\n')], [large]];
  for (const parts of messages) {
    const result = await sendViaSmtp(pools, upstreamAt(up.port), envelope, parts);
    t.equal(result.outcomes[0]?.status, 'sent');
  }
  const received = up.sessions.flatMap((session) => session.dataChunks);
  t.equal(received.length, messages.length);
  for (const [i, parts] of messages.entries()) {
    const got = received[i] ?? [];
    t.same(Buffer.concat(got), await stock(parts), `message ${i + 1}: the bytes DataStream would send`);
    // One part is a message of up to 64 KB (message-bytes.ts joins smaller ones).
    if (parts.length === 1 && parts[0] !== large) t.equal(got.length, 1, `message ${i + 1}: one write, the dot with the last bytes`);
  }
});

t.test('a message read from its spool file (a header prefix in front) gets the same bytes', async (t) => {
  const up = await startScriptedServer();
  const pools = new UpstreamPools('relay.test');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-stuffing-'));
  t.teardown(async () => {
    pools.close();
    await up.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const file = path.join(dir, 'm.eml');
  const body = Buffer.from(`Subject: x\r\n\r\n${'.dot first\r\nplain\r\n'.repeat(5000)}`);
  fs.writeFileSync(file, body);
  const prefix = Buffer.from('X-Prefix: 1\r\n');
  const result = await sendViaSmtp(pools, upstreamAt(up.port), envelope, { path: file, prefix });
  t.equal(result.outcomes[0]?.status, 'sent');
  t.same(Buffer.concat(up.sessions[0]?.dataChunks[0] ?? []), await stock([prefix, body]));
});
