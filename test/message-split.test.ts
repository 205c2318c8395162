// A message is a header block and a body (message/split.ts): the first blank line ends the header,
// whatever line endings the client used; only the header block is ever parsed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { readHeaderBlock, splitMessage } from '../relay/message/split.js';

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
