// A webhook's outbox on disk: what a crash leaves is read back whole or not at all, the cursor survives a
// restart, finished segments are deleted, and the cap drops the oldest first.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { fairDrops } from '../relay/reporting/fair-drops.js';
import { Outbox } from '../relay/reporting/outbox.js';

const fresh = (t: Test) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-outbox-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
};
const ev = (n: number) => JSON.stringify({ id: `e${n}`, n });
const ids = (events: readonly string[]) => events.map((e) => (JSON.parse(e) as { id: string }).id);

t.test('events come back in the order written, and a taken batch is not read again, across a reopen', async (t) => {
  const dir = fresh(t);
  const box = new Outbox(dir, 1000);
  box.append([ev(1), ev(2)]);
  box.append([ev(3)]);
  const first = await box.read(2);
  t.same(ids(first?.events ?? []), ['e1', 'e2']);
  t.same(ids((await box.read(10))?.events ?? []), ['e1', 'e2', 'e3'], 'not taken yet: read again from the start');
  if (first) box.ack(first);
  t.equal(box.backlog, 1);
  box.close();
  const again = new Outbox(dir, 1000);
  t.equal(again.backlog, 1, 'the cursor survived');
  t.same(ids((await again.read(10))?.events ?? []), ['e3']);
  again.close();
});

t.test('a line a crash cut short is dropped at open; the events before it are kept', async (t) => {
  const dir = fresh(t);
  const box = new Outbox(dir, 1000);
  box.append([ev(1), ev(2)]);
  box.close();
  const [segment] = fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl'));
  fs.appendFileSync(path.join(dir, segment ?? ''), '{"id":"e3","n":');
  const reopened = new Outbox(dir, 1000);
  t.equal(reopened.backlog, 2);
  reopened.append([ev(4)]);
  t.same(ids((await reopened.read(10))?.events ?? []), ['e1', 'e2', 'e4']);
  reopened.close();
});

t.test('past the cap single events go, oldest first, down to 90 % of it; they are counted', async (t) => {
  const dir = fresh(t);
  const box = new Outbox(dir, 20);
  let dropped = 0;
  for (let i = 1; i <= 30; i++) dropped += box.append([ev(i)]);
  t.equal(dropped + box.backlog, 30, 'every event is either kept or counted as dropped');
  t.ok(box.backlog <= 20 && box.backlog >= 18, `the backlog is within the cap (${box.backlog})`);
  const batch = await box.read(100);
  const kept = ids(batch?.events ?? []);
  t.equal(kept.at(-1), 'e30', 'the newest is kept');
  t.same(kept, [...kept].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))), 'in order');
  t.equal(Number(kept[0]?.slice(1)), dropped + 1, 'the oldest went first');
  if (batch) box.ack(batch);
  t.equal(box.backlog, 0);
  t.ok(fs.readdirSync(dir).filter((f) => f.endsWith('.jsonl')).length <= 1, 'finished segments are deleted');
  box.close();
});

t.test('the drops fall on the tenants holding the most: water-filling, one event at a time', async (t) => {
  const cases: [string[], number, Record<string, number>][] = [
    [['a', 'a', 'a', 'a', 'b'], 2, { a: 2 }],
    [['a', 'a', 'a', 'b', 'b', 'c'], 3, { a: 2, b: 1 }],
    [['a', 'b', 'c'], 3, { a: 1, b: 1, c: 1 }],
    [['a', 'a', 'b', 'b'], 1, { a: 1 }],
    [['a', 'b'], 0, {}],
  ];
  for (const [tenants, count, want] of cases) t.same(Object.fromEntries(fairDrops(tenants, count)), want, `${tenants.join('')} less ${count}`);
});
