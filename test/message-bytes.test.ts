// A message in memory is one buffer or its parts in order (message-bytes.ts): small messages are joined
// (one write to the upstream), large ones keep their header block apart from the body (no copy).
import t from 'tap';
import { isInMemory, joinedIfSmall, lengthOf, partsOf } from '../relay/message-bytes.js';

t.test('parts up to 64 KB in all are joined into one buffer; larger ones are kept as they are', async (t) => {
  const head = Buffer.from('Subject: x\r\n\r\n');
  for (const [name, body, joined] of [
    ['1 KB', Buffer.alloc(1024, 0x61), true],
    ['exactly 64 KB in all', Buffer.alloc(64 * 1024 - head.length, 0x61), true],
    ['a byte over 64 KB', Buffer.alloc(64 * 1024 - head.length + 1, 0x61), false],
    ['200 KB', Buffer.alloc(200 * 1024, 0x61), false],
  ] as const) {
    const bytes = joinedIfSmall([head, body]);
    t.equal(Buffer.isBuffer(bytes), joined, `${name}: ${joined ? 'one buffer' : 'parts'}`);
    t.ok(Buffer.concat(partsOf(bytes)).equals(Buffer.concat([head, body])), `${name}: the same bytes`);
    t.equal(lengthOf(bytes), head.length + body.length, `${name}: its length`);
    if (!joined) t.equal(partsOf(bytes)[1], body, `${name}: the body is not copied`);
  }
});

t.test('a source is in memory when it is bytes, not a file', async (t) => {
  t.ok(isInMemory(Buffer.from('x')));
  t.ok(isInMemory([Buffer.from('x'), Buffer.from('y')]));
  t.notOk(isInMemory({ path: '/tmp/x.eml' }));
});
