// The header block reads and writes what mailsplit's Headers did, for every change the relay makes: the
// same lines found, the same values read, the same bytes written. mailsplit is the reference here, but
// for two differences on purpose (tests of their own below): a line the relay adds is written in UTF-8,
// and a first line starting "From " or "POST " is a header line, not an mbox or HTTP preamble.
import { Headers } from '@zone-eu/mailsplit';
import t from 'tap';
import { HeaderBlock } from '../relay/message/header-block.js';
import { fixedRandom } from './helpers/random.js';

type Op = { op: 'set'; name: string; value: string } | { op: 'remove'; name: string } | { op: 'prepend'; name: string; line: string };

/** Both implementations after the same changes: what each reads and writes. */
function both(header: Buffer, ops: readonly Op[], reads: readonly string[]) {
  const ours = HeaderBlock.parse(header);
  const theirs = new Headers(header);
  for (const o of ops) {
    if (o.op === 'set') {
      ours.set(o.name, o.value);
      theirs.update(o.name, o.value);
    } else if (o.op === 'remove') {
      ours.remove(o.name);
      theirs.remove(o.name);
    } else {
      ours.prepend(o.name, o.line);
      theirs.addFormatted(o.name, o.line, 0);
    }
  }
  return {
    ours: { reads: reads.map((n) => [ours.count(n), ours.first(n)]), bytes: ours.toBuffer().toString('latin1') },
    theirs: { reads: reads.map((n) => [theirs.get(n).length, theirs.getFirst(n)]), bytes: theirs.build().toString('latin1') },
  };
}

// What transform.ts does to every message: at least Received goes in, so the block is always rebuilt.
const received: Op = { op: 'prepend', name: 'Received', line: 'Received: from app (localhost [127.0.0.1])\r\n\tby relay (tenant-relay) with ESMTP id abc; Fri, 04 Dec 2026 23:00:00 +0000' };
const rewrite: Op[] = [
  { op: 'set', name: 'From', value: '"Acme" <notifications@acme.test>' },
  { op: 'set', name: 'Reply-To', value: 'support@acme.test' },
  { op: 'remove', name: 'X-Platform-Secret' },
  { op: 'set', name: 'X-Relay-Route', value: 'tenant=acme; upstream=default' },
  received,
];
const reads = ['from', 'reply-to', 'message-id', 'received', 'subject', 'x-platform-secret', ''];

const cases: Record<string, string> = {
  'a plain block': 'From: App <app@acme.test>\r\nTo: user@example.com\r\nSubject: Hello\r\nMessage-ID: <1@acme.test>\r\n\r\n',
  'LF-only line ends': 'From: app@acme.test\nTo: user@example.com\nSubject: hi\n\n',
  'folded lines, CRLF and LF': 'Subject: a very\r\n long subject\r\nTo: a@b.test,\n\tc@d.test\r\nFrom: x@acme.test\r\n\r\n',
  'a folded From': 'From: "A long display name"\r\n <app@acme.test>\r\nSubject: x\r\n\r\n',
  'several From and Reply-To lines': 'From: a@acme.test\r\nReply-To: r1@x.test\r\nFrom: b@acme.test\r\nReply-To: r2@x.test\r\n\r\n',
  'a bare CR inside a line and before the line end': 'Subject: a\rb\r\r\nFrom: a@acme.test\r\n\r\n',
  'a line that is only a CR': 'Subject: a\r\n\r\r\nFrom: a@acme.test\r\n\r\n',
  'no colon, the name from a continuation': 'Bogus\r\n X-Name: value\r\nFrom: a@acme.test\r\n\r\n',
  'a first line with no colon': 'nonsense\r\nFrom: a@acme.test\r\n\r\n',
  'an empty block': '',
  'only the blank line': '\r\n\r\n',
  'no blank line at the end': 'From: a@acme.test\r\nSubject: x',
  'a continuation first': ' folded\r\nFrom: a@acme.test\r\n\r\n',
  'names in odd case and with spaces before the colon': 'Subject: s\r\nFROM : A <a@acme.test>\r\nreply-TO: r@x.test\r\nMessage-Id:   <m@x>  \r\n\r\n',
  'UTF-8 in a display name and a subject': `From: ${Buffer.from('Zoë <a@acme.test>', 'utf8').toString('latin1')}\r\nSubject: ${Buffer.from('日本', 'utf8').toString('latin1')}\r\n\r\n`,
  'invalid UTF-8 bytes': 'From: \xff\xfe <a@acme.test>\r\nSubject: \xc3\r\n\r\n',
  'a U+2028 in a value': `Subject: a${Buffer.from('\u2028', 'utf8').toString('latin1')}b\r\nFrom: a@acme.test\r\n\r\n`,
  'encoded words': 'From: =?UTF-8?B?Wm/Dqw==?= <a@acme.test>\r\nSubject: =?ISO-8859-1?Q?caf=E9?=\r\n\r\n',
  'a header named like an Object member': '__proto__: x\r\nconstructor: y\r\nFrom: a@acme.test\r\n\r\n',
  'the platform header to remove, twice, folded': 'X-Platform-Secret: a\r\n b\r\nFrom: a@acme.test\r\nx-platform-secret: c\r\n\r\n',
  'an existing route header below': 'From: a@acme.test\r\nSubject: s\r\nX-Relay-Route: forged\r\n\r\n',
};

t.test('the relay’s changes give the bytes and values mailsplit gave, on every kind of block', async (t) => {
  for (const [name, block] of Object.entries(cases)) {
    const { ours, theirs } = both(Buffer.from(block, 'latin1'), rewrite, reads);
    t.same(ours, theirs, name);
    const untouched = both(Buffer.from(block, 'latin1'), [received], reads);
    t.same(untouched.ours, untouched.theirs, `${name}, only Received added`);
  }
});

t.test('a value set with line breaks or beyond ASCII, and a long one, is folded and encoded as mailsplit did', async (t) => {
  const values = ['a\r\nX-Injected: yes', 'line\nbreak', 'tenant=Zoë; upstream=日本', 'x'.repeat(200), `${'word '.repeat(40)}end`, '', ' \t', '\r\n'];
  for (const value of values) {
    const { ours, theirs } = both(Buffer.from(cases['a plain block'] ?? '', 'latin1'), [{ op: 'set', name: 'X-Trace', value }, received], reads);
    t.same(ours, theirs, JSON.stringify(value));
  }
});

t.test('a line the relay adds is written in UTF-8 (mailsplit wrote it in latin1, cutting what latin1 lacks)', async (t) => {
  const block = HeaderBlock.parse(Buffer.from('Subject: x\r\n\r\n'));
  block.prepend('Received', 'Received: from app\r\n\tfor <zoë@日本.test>; Fri, 04 Dec 2026 23:00:00 +0000');
  t.equal(block.toBuffer().toString('utf8'), 'Received: from app\r\n\tfor <zoë@日本.test>; Fri, 04 Dec 2026 23:00:00 +0000\r\nSubject: x\r\n\r\n');
});

t.test('a first line starting "From " is a header line like any other: "From : x" is a From, and an mbox-like line stays where it was', async (t) => {
  // mailsplit set such a line apart as an mbox separator (and "POST " as an HTTP request line), unseen by
  // every check on the From, and wrote it back above everything.
  const spaced = HeaderBlock.parse(Buffer.from('From : CEO <ceo@globex.test>\r\nSubject: x\r\n\r\n'));
  t.equal(spaced.count('from'), 1);
  t.equal(spaced.first('from'), 'CEO <ceo@globex.test>');
  spaced.set('From', 'notifications@acme.test');
  t.equal(spaced.toBuffer().toString('latin1'), 'From: notifications@acme.test\r\nSubject: x\r\n\r\n', 'replaced, not kept beside the new one');

  const twice = HeaderBlock.parse(Buffer.from('From : ceo@globex.test\r\nFrom: a@acme.test\r\n\r\n'));
  t.equal(twice.count('from'), 2, 'two From lines, for the several-From refusal to see');

  for (const first of ['From app@acme.test Fri Dec  4 23:00:00 2026', 'POST /mail HTTP/1.1']) {
    const block = HeaderBlock.parse(Buffer.from(`${first}\r\nFrom: a@acme.test\r\n\r\n`));
    t.equal(block.first('from'), 'a@acme.test', first);
    block.prepend('Received', 'Received: by relay');
    t.equal(block.toBuffer().toString('latin1'), `Received: by relay\r\n${first}\r\nFrom: a@acme.test\r\n\r\n`, `${first}: in its place, under Received`);
  }
});

t.test('an added line cannot fold into the line above or end the block', async (t) => {
  for (const line of ['\r\n\tX-A: 1', ' X-A: 1', '\r\n\r\nX-A: 1', 'X-A: 1\r\nX-Injected: 2', 'X-A: 1\r\n\r\nbody', '\r\n']) {
    const { ours, theirs } = both(Buffer.from('From: a@acme.test\r\n\r\n'), [{ op: 'prepend', name: 'X-A', line }], ['x-a', 'x-injected']);
    t.same(ours, theirs, JSON.stringify(line));
    t.notMatch(ours.bytes.slice(0, -4), /\r\n\r\n|\r\n(?![ \t])X-Injected/, `${JSON.stringify(line)} adds one header, inside the block`);
  }
});

// Bytes that make header parsing go wrong: line breaks of every kind, folds, colons, the names the relay
// touches, preamble words, UTF-8 (valid, invalid, U+2028) and encoded words.
const pieces = ['From', 'from', 'FROM ', 'Reply-To', 'Received', 'Message-ID', 'X-Platform-Secret', 'Subject', 'POST ', ':', ': ', ' ', '\t', '\r', '\n', '\r\n', '\r\n ', '\n\t', 'a@acme.test', '<b@x.test>', 'é', '\xc3\xa9', '\xff', '\xe2\x80\xa8', '=?UTF-8?B?WMOr?=', '"', 'text'];
const names = ['From', 'Reply-To', 'Received', 'X-Platform-Secret', 'X-Relay-Route', 'Subject', 'from ', ''];

t.test('3,000 seeded random blocks and changes: the same bytes and values as mailsplit', async (t) => {
  const random = fixedRandom(20261204);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const text = (max: number) => Array.from({ length: Math.floor(random() * max) }, () => pick(pieces)).join('');
  let differing = 0;
  let preambles = 0;
  for (let i = 0; i < 3000; i++) {
    const block = Buffer.from(`${text(40)}\r\n\r\n`, 'latin1');
    // Where mailsplit saw an mbox or HTTP preamble the two differ on purpose (the test above).
    if (/^(?:From|POST) /i.test(block.toString('latin1'))) {
      preambles++;
      continue;
    }
    const ops: Op[] = Array.from({ length: Math.floor(random() * 5) }, (): Op => {
      const kind = random();
      if (kind < 0.4) return { op: 'set', name: pick(names), value: text(8) };
      if (kind < 0.7) return { op: 'remove', name: pick(names) };
      // Lines the relay adds are ASCII here: beyond it the two differ on purpose (the test above).
      return { op: 'prepend', name: pick(names), line: text(6).replace(/[^\x20-\x7e\r\n\t]/g, '?') };
    });
    const { ours, theirs } = both(block, ops, [...names, 'message-id']);
    if (JSON.stringify(ours) !== JSON.stringify(theirs) && differing++ < 3) t.same(ours, theirs, JSON.stringify({ block: block.toString('latin1'), ops }));
  }
  t.equal(differing, 0, 'blocks that differ');
  t.ok(preambles < 300, `${preambles} blocks left out for a "From " or "POST " first line`);
});
