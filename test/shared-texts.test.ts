// Texts a queue of deferred messages repeats (queue/shared-texts.ts): kept once, the entries unchanged,
// the table bounded.
import v8 from 'node:v8';
import vm from 'node:vm';
import t from 'tap';
import type { QueuedMessage } from '../relay/queue/entry.js';
import { MAX_SHARED_TEXTS, sharedText, sharedTextsHeld, withSharedTexts } from '../relay/queue/shared-texts.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const reply = `451 4.4.1 upstream mx.tenant.example unreachable: ${'connection refused '.repeat(30)}`;
const upstreamReply = `421 4.7.0 ${'try again later '.repeat(35)}`;
/** A deferred entry as the spool holds it, read back as recovery reads it: every string a copy of its own. */
const readBack = (i: number): QueuedMessage =>
  JSON.parse(
    JSON.stringify({
      v: 1,
      id: `m${i}`,
      createdAt: 1_765_000_000_000,
      mailFrom: 'notifications@acme.example',
      tenant: 'acme',
      size: 1400,
      recipients: [{ address: `user${i}@customer.example`, status: 'pending', reply, upstreamReply }],
      attempts: 3,
      nextAttemptAt: 1_765_000_600_000,
      lastError: reply,
    }),
  ) as QueuedMessage;

function heapOf(make: (i: number) => QueuedMessage): number {
  gc();
  const before = v8.getHeapStatistics().used_heap_size;
  const held = Array.from({ length: 5000 }, (_, i) => make(i));
  gc();
  const grown = v8.getHeapStatistics().used_heap_size - before;
  // Read after the measure, so the entries are alive through it.
  return held.length === 5000 ? grown : Number.NaN;
}

t.test('entries read back keep one copy of the texts they repeat, not one each', async (t) => {
  const plain = heapOf(readBack);
  const shared = heapOf((i) => withSharedTexts(readBack(i)));
  // Three ~600-byte texts an entry: about 9 MB for 5,000 as they were parsed, kept once when shared.
  t.ok(plain > 8_000_000, `parsed: ${plain} bytes`);
  t.ok(shared < plain / 3, `shared: ${shared} bytes against ${plain}`);
});

t.test('an entry with its texts shared is the same entry, fields absent stay absent', async (t) => {
  const full = readBack(1);
  t.same(withSharedTexts(full), full);
  t.equal(JSON.stringify(withSharedTexts(full)), JSON.stringify(full), 'the same record when written again');
  const fresh: QueuedMessage = { v: 1, id: 'm2', createdAt: 1, mailFrom: '', tenant: null, size: 10, recipients: [{ address: 'a@b.example', status: 'pending' }], attempts: 0, nextAttemptAt: 1 };
  t.equal(JSON.stringify(withSharedTexts(fresh)), JSON.stringify(fresh));
  t.notOk('lastError' in withSharedTexts(fresh));
  t.notOk('reply' in (withSharedTexts(fresh).recipients[0] ?? {}));
});

t.test('the table is bounded: texts that never repeat (an id, a time in them) start it over, not grow it', async (t) => {
  let unchanged = true;
  for (let i = 0; i < MAX_SHARED_TEXTS * 3; i++) unchanged &&= sharedText(`451 4.3.0 queued as ${i}`) === `451 4.3.0 queued as ${i}`;
  t.ok(unchanged, 'each text comes back as it went in');
  t.ok(sharedTextsHeld() <= MAX_SHARED_TEXTS);
  const long = 'x'.repeat(5000);
  const held = sharedTextsHeld();
  t.equal(sharedText(long), long);
  t.equal(sharedTextsHeld(), held, 'a text over the length limit is not kept');
});
