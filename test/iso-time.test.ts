// Times in log lines and delivery events (iso-time.ts) read exactly as Date#toISOString writes them,
// whichever time came before (the part up to the second is kept from one call to the next).
import t from 'tap';
import { isoTime } from '../relay/iso-time.js';

const times: [string, number][] = [
  ['the epoch', 0],
  ['a millisecond into a second', 1_796_475_517_001],
  ['the last millisecond of a second', 1_796_475_517_999],
  ['the next second', 1_796_475_518_000],
  ['tens of milliseconds', 1_796_475_518_042],
  ['a fraction of a millisecond is cut, as Date cuts it', 1_796_475_518_042.9],
  ['before 1970', -1],
  ['before 1970, mid-second', -1_500],
  ['past the year 9999', 253_402_300_800_000],
  ['the last day of a leap year', Date.UTC(2028, 11, 31, 23, 59, 59, 999)],
];

t.test('each time reads as toISOString writes it, called in turn', async (t) => {
  for (const [name, ms] of times) t.equal(isoTime(ms), new Date(ms).toISOString(), name);
});

t.test('the same times in the reverse order, and each one twice', async (t) => {
  for (const [name, ms] of [...times].reverse()) {
    t.equal(isoTime(ms), new Date(ms).toISOString(), name);
    t.equal(isoTime(ms), new Date(ms).toISOString(), `${name}, again`);
  }
});

t.test('a run of times a few milliseconds apart across many seconds', async (t) => {
  const start = Date.UTC(2026, 11, 5, 13, 59, 58, 0);
  let wrong = 0;
  for (let ms = start; ms < start + 5_000; ms += 7) if (isoTime(ms) !== new Date(ms).toISOString()) wrong++;
  t.equal(wrong, 0);
});

t.test('a time that is no date throws as toISOString does', async (t) => {
  t.throws(() => isoTime(Number.NaN), RangeError);
  t.throws(() => isoTime(8.64e15 + 1), RangeError);
});
