// The SMTP smuggling guard on DATA as it streams (inbound/line-endings.ts): any bare CR, bare LF or NUL
// is found, wherever chunks split the bytes, and in normalize mode repaired to CRLF (NUL dropped).
import t from 'tap';
import { LineEndingGuard } from '../relay/inbound/line-endings.js';

function run(mode: 'reject' | 'normalize', chunks: string[]): { found: boolean; out: string } {
  const guard = new LineEndingGuard(mode);
  const out = chunks.map((c) => guard.push(Buffer.from(c, 'latin1')).toString('latin1')).join('') + guard.end().toString('latin1');
  return { found: guard.found, out };
}

const cases: [string, string[], boolean, string][] = [
  // name, chunks, found, normalized output
  ['clean CRLF lines', ['a\r\nb\r\n'], false, 'a\r\nb\r\n'],
  ['CRLF split across chunks', ['a\r', '\nb\r\n'], false, 'a\r\nb\r\n'],
  ['a bare LF', ['a\nb\r\n'], true, 'a\r\nb\r\n'],
  ['a bare LF at the start of a chunk', ['a', '\nb\r\n'], true, 'a\r\nb\r\n'],
  ['a bare CR', ['a\rb\r\n'], true, 'a\r\nb\r\n'],
  ['a bare CR at the end of a chunk, then text', ['a\r', 'b\r\n'], true, 'a\r\nb\r\n'],
  ['a CR at the very end', ['a\r'], true, 'a\r\n'],
  ['a NUL', ['a\u0000b\r\n'], true, 'ab\r\n'],
  ['the smuggling end marker \\n.\\n', ['x\n.\nMAIL FROM:<a@b>\r\n'], true, 'x\r\n.\r\nMAIL FROM:<a@b>\r\n'],
  ['the smuggling end marker \\r.\\r', ['x\r.\r\n'], true, 'x\r\n.\r\n'],
];

for (const [name, chunks, found, normalized] of cases) {
  t.test(name, async (t) => {
    const rejecting = run('reject', chunks);
    t.equal(rejecting.found, found, 'found');
    t.equal(rejecting.out, chunks.join(''), 'reject mode passes the bytes through unchanged');
    const normalizing = run('normalize', chunks);
    t.equal(normalizing.found, found, 'found in normalize mode too');
    t.equal(normalizing.out, normalized, 'repaired');
  });
}

t.test('byte by byte, every case is found the same', async (t) => {
  for (const [name, chunks, found] of cases) t.equal(run('reject', [...chunks.join('')]).found, found, name);
});
