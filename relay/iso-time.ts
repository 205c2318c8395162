// ISO 8601 times (UTC, milliseconds) for what is written several times a message: each log line's time
// and each delivery event's. Date#toISOString costs about 0.8 us a call here; the text up to the second
// changes once a second, so it is made once a second and the milliseconds are put after it.

/** The furthest a Date reaches either side of the epoch (ECMA-262's time value range). */
const MAX_DATE_MS = 8.64e15;

let second = Number.NaN;
let upToSecond = '';

/** What `new Date(ms).toISOString()` gives (a RangeError for a time that is no date, as it throws). */
export function isoTime(ms: number): string {
  // Past Date's range (or NaN), toISOString itself throws.
  if (!(Math.abs(ms) <= MAX_DATE_MS)) return new Date(ms).toISOString();
  const whole = Math.floor(ms);
  const s = Math.floor(whole / 1000);
  if (s !== second) {
    // Everything but "mmmZ": the year's form (beyond 9999, before 0) is toISOString's own.
    upToSecond = new Date(s * 1000).toISOString().slice(0, -4);
    second = s;
  }
  const milli = whole - s * 1000;
  return `${upToSecond}${milli < 10 ? '00' : milli < 100 ? '0' : ''}${milli}Z`;
}
