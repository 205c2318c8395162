// Pacing a mailbox its provider asked to slow down (queue/pacing.ts): cool-downs that double while the
// replies continue, then connections back one a minute, then forgotten. Pure rules, a table each.
import t from 'tap';
import { Pacing } from '../relay/queue/pacing.js';

const MIN = 60_000;

t.test('a cool-down per signal: a minute for a throttle, five for a quota, doubling in a row up to 8 and 10 (back within ten minutes of the provider)', async (t) => {
  const cases: [string, 'quota' | 'throttle', number[]][] = [
    ['throttle', 'throttle', [1, 2, 4, 8, 8, 8]],
    ['quota', 'quota', [5, 10, 10, 10]],
  ];
  for (const [name, signal, minutes] of cases) {
    const pacing = new Pacing();
    let now = 0;
    const got = minutes.map(() => {
      const until = pacing.signal('mailbox', signal, '421 4.7.28 slow down', now)?.until ?? Number.NaN;
      const length = (until - now) / MIN;
      now = until; // the next signal comes as the cool-down ends
      return length;
    });
    t.same(got, minutes, name);
  }
});

t.test('a signal during a cool-down (attempts already under way) does not lengthen it', async (t) => {
  const pacing = new Pacing();
  const first = pacing.signal('m', 'throttle', '421 4.7.28', 0);
  t.equal(pacing.signal('m', 'throttle', '421 4.7.28', 30_000), undefined);
  t.equal(pacing.hold('m', 30_000)?.until, first?.until);
});

t.test('after a cool-down: no connection during it, then one, one more each minute, up to maxConnections; forgotten after ten quiet minutes at full pace', async (t) => {
  const pacing = new Pacing();
  pacing.signal('m', 'throttle', '421 4.7.28', 0);
  const at = (minutes: number) => pacing.slots('m', 5, minutes * MIN);
  const table: [number, number][] = [
    [0.5, 0],
    [1, 1],
    [1.9, 1],
    [2, 2],
    [4, 4],
    [5, 5],
    [9, 5],
  ];
  for (const [minutes, slots] of table) t.equal(at(minutes), slots, `at ${minutes} min: ${slots}`);
  t.equal(pacing.size, 1, 'still remembered');
  t.equal(at(15), 5);
  t.equal(pacing.size, 0, 'forgotten');
  t.equal(pacing.hold('m', 15 * MIN), undefined);
  t.equal(pacing.signal('m', 'throttle', '421 4.7.28', 16 * MIN)?.level, 0, 'a later signal starts over');
});

t.test('other mailboxes are not paced', async (t) => {
  const pacing = new Pacing();
  pacing.signal('a', 'quota', '550 5.4.5', 0);
  t.equal(pacing.slots('b', 3, 1000), 3);
  t.equal(pacing.hold('b', 1000), undefined);
  t.match(pacing.hold('a', 1000), { until: 5 * MIN, reason: /quota is used up \(550 5\.4\.5\); paced until/ });
});

t.test('a mailbox no more mail goes to is forgotten too, at the next signal for any mailbox', async (t) => {
  const pacing = new Pacing();
  pacing.signal('gone', 'throttle', '421 4.7.28', 0);
  pacing.signal('other', 'throttle', '421 4.7.28', 120 * MIN);
  t.equal(pacing.size, 1, 'two hours on, only the other is remembered');
  t.equal(pacing.hold('gone', 120 * MIN), undefined);
});

t.test("another relay's cool-down: taken when it ends later than this relay's own, never one already over; the next signal doubles it", async (t) => {
  const told = (until: number, level = 0) => ({ signal: 'throttle' as const, level, until, reason: 'told' });
  const cases: [string, (p: Pacing) => void, ReturnType<typeof told>, boolean, number | undefined][] = [
    ['none here: taken', () => {}, told(MIN), true, MIN],
    ['already over: not taken', () => {}, told(-1), false, undefined],
    ['ends later than ours: taken', (p) => p.signal('m', 'throttle', '421', 0), told(2 * MIN), true, 2 * MIN],
    ['ends before ours: ours stays', (p) => p.signal('m', 'throttle', '421', 0), told(MIN / 2), false, MIN],
  ];
  for (const [name, before, change, taken, until] of cases) {
    const pacing = new Pacing();
    before(pacing);
    t.equal(pacing.adopt('m', change, 0), taken, name);
    t.equal(pacing.hold('m', 0)?.until, until, `${name}: the hold`);
  }
  const pacing = new Pacing();
  pacing.adopt('m', told(MIN, 2), 0);
  t.equal(pacing.slots('m', 5, MIN / 2), 0, 'no connection during it');
  t.equal(pacing.signal('m', 'throttle', '421', MIN)?.until, MIN + 8 * MIN, 'the next signal here is the fourth in a row: eight minutes');
});
