// A message is a header block and a body (message/split.ts): the first blank line ends the header,
// whatever line endings the client used; only the header block is ever parsed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { readHeaderBlock, splitChunks, splitMessage } from '../relay/message/split.js';
import { fixedRandom, randomChunks } from './helpers/random.js';

const cases: [string, string, string, string][] = [
  ['CRLF', 'Subject: a\r\nFrom: b\r\n\r\nbody\r\n', 'Subject: a\r\nFrom: b\r\n\r\n', 'body\r\n'],
  ['LF only', 'Subject: a\n\nbody\n', 'Subject: a\n\n', 'body\n'],
  ['a blank line in the body stays in the body', 'S: a\r\n\r\nx\r\n\r\ny\r\n', 'S: a\r\n\r\n', 'x\r\n\r\ny\r\n'],
  ['no body', 'Subject: a\r\n\r\n', 'Subject: a\r\n\r\n', ''],
  ['no blank line: all header', 'Subject: a\r\n', 'Subject: a\r\n', ''],
  ['an LF blank line before a CRLF one', 'S: a\n\nb\r\n\r\nc', 'S: a\n\n', 'b\r\n\r\nc'],
];

for (const [name, message, header, body] of cases) {
  t.test(name, async (t) => {
    const split = splitMessage(Buffer.from(message));
    t.equal(split.header.toString(), header);
    t.equal(split.body.toString(), body);
  });
}

t.test('readHeaderBlock reads a file up to its blank line, and gives up past the limit', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-split-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'm.eml');
  fs.writeFileSync(file, `Subject: a\r\n\r\n${'body\r\n'.repeat(100_000)}`);
  t.equal((await readHeaderBlock(file))?.toString(), 'Subject: a\r\n\r\n');
  fs.writeFileSync(file, `X-Long: ${'y'.repeat(3000)}\r\n\r\nbody`);
  t.equal(await readHeaderBlock(file, 1024), undefined);
});

t.test('a message held in chunks splits as the same message joined, wherever it was cut', async (t) => {
  const same = (chunks: Buffer[]) => {
    const whole = splitMessage(Buffer.concat(chunks));
    const split = splitChunks(chunks);
    return split.header.equals(whole.header) && Buffer.concat(split.body).equals(whole.body);
  };
  for (const [name, message] of cases) {
    const b = Buffer.from(message);
    t.ok(same([b]), `${name}: one chunk`);
    for (let cut = 0; cut <= b.length; cut++) t.ok(same([b.subarray(0, cut), b.subarray(cut)]), `${name}: cut at ${cut}`);
  }
  t.ok(same([]), 'no chunks');
  // Bounded: a fixed number of cases from a fixed seed.
  const random = fixedRandom(4242);
  let mismatches = 0;
  for (let n = 0; n < 3000; n++) if (!same(randomChunks(random, [0x0d, 0x0a, 0x61, 0x3a], 30, 10))) mismatches++;
  t.equal(mismatches, 0, 'random messages of CR, LF and text, cut at random');
});

t.test('a body in one chunk after the header is not copied', async (t) => {
  const first = Buffer.from('Subject: a\r\n\r\nbody starts');
  const second = Buffer.from(' and goes on\r\n');
  const split = splitChunks([first, second]);
  const rest = split.body[0];
  t.ok(rest && rest.buffer === first.buffer && rest.byteOffset === first.byteOffset + split.header.length, 'the rest of the first chunk is a view of it');
  t.equal(split.body[1], second, 'later chunks are passed on as they are');
});
