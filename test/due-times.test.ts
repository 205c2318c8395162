// The queue's due times (queue/due-times.ts): a round takes exactly what is due, earliest first, and a
// message rescheduled or removed is never handed out for its old time.
import t from 'tap';
import { DueTimes } from '../relay/queue/due-times.js';

t.test('takes what is due, earliest first, and leaves the rest', async (t) => {
  const due = new DueTimes();
  for (const [id, at] of [['c', 30], ['a', 10], ['d', 40], ['b', 20]] as const) due.set(id, at);
  t.same(due.takeDue(25), ['a', 'b']);
  t.equal(due.size, 2);
  t.equal(due.next(), 30);
  t.same(due.takeDue(100), ['c', 'd']);
  t.equal(due.next(), undefined);
});

t.test('a rescheduled message is due at its new time only; a removed one never', async (t) => {
  const due = new DueTimes();
  due.set('a', 10);
  due.set('b', 10);
  due.set('a', 50);
  due.delete('b');
  t.same(due.takeDue(20), []);
  t.equal(due.at('a'), 50);
  t.same(due.takeDue(50), ['a']);
  t.notOk(due.has('a'));
});

t.test('100,000 entries rescheduled many times: the heap stays bounded and the order right', async (t) => {
  const due = new DueTimes();
  for (let round = 0; round < 5; round++) for (let i = 0; i < 100_000; i++) due.set(`m${i}`, ((i * 7919) % 100_000) + round);
  t.equal(due.size, 100_000);
  const first = due.takeDue(10);
  t.equal(first.length, 7, 'only the 7 due by then (the last schedule, +4)');
  let previous = -Infinity;
  let ordered = true;
  for (const id of due.takeDue(1_000_000)) {
    const at = ((Number(id.slice(1)) * 7919) % 100_000) + 4;
    if (at < previous) ordered = false;
    previous = at;
  }
  t.ok(ordered, 'earliest first');
  t.equal(due.size, 0);
});

t.test('messages scheduled for a time the last round passed are due at the next, in order among the rest', async (t) => {
  const due = new DueTimes();
  due.set('later', 300);
  due.set('soon', 150);
  t.same(due.takeDue(100), []);
  // Each already due when scheduled (a fresh message, a retry asked for now).
  due.set('fresh-2', 90);
  due.set('fresh-1', 50);
  due.set('fresh-3', 120);
  due.set('moved', 95);
  due.set('moved', 400); // rescheduled past the round: its earlier time no longer counts
  t.equal(due.next(), 50);
  t.equal(due.size, 6);
  t.same(due.takeDue(200), ['fresh-1', 'fresh-2', 'fresh-3', 'soon']);
  t.same(due.takeDue(1000), ['later', 'moved']);
  t.equal(due.next(), undefined);
});

t.test('a clock set back: what was scheduled before the new time waits for it', async (t) => {
  const due = new DueTimes();
  t.same(due.takeDue(1000), []);
  due.set('a', 900);
  t.same(due.takeDue(800), [], 'the round at 800 leaves the message due at 900');
  t.equal(due.at('a'), 900);
  t.same(due.takeDue(900), ['a']);
});

t.test('a removed message is never handed out, whether it waited in the heap or was already due', async (t) => {
  const due = new DueTimes();
  due.takeDue(100);
  due.set('heap', 200);
  due.set('overdue', 50);
  due.delete('heap');
  due.delete('overdue');
  t.equal(due.size, 0);
  t.equal(due.next(), undefined);
  t.same(due.takeDue(1000), []);
});
