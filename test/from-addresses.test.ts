// What a From names, as the tenant checks read it: every mailbox a reader would see, in order. A list's
// second address and a group's members count as much as the first (a check of only the first let another
// tenant's address through), and the rewrite takes the first as the author.
import t from 'tap';
import { headerFromAddresses, parseMailboxes } from '../relay/message/addresses.js';

const cases: [string, string[]][] = [
  ['App <app@acme.test>', ['app@acme.test']],
  ['app@acme.test', ['app@acme.test']],
  ['App <app@acme.test>, CEO <ceo@globex.test>', ['app@acme.test', 'ceo@globex.test']],
  ['Board: CEO <ceo@globex.test>;', ['ceo@globex.test']],
  ['App <app@acme.test>, Board: a@globex.test, b@globex.test;', ['app@acme.test', 'a@globex.test', 'b@globex.test']],
  ['Undisclosed recipients:;', []],
  ['"Quoted, Name" <q@acme.test>', ['q@acme.test']],
  ['=?UTF-8?B?Wm/Dqw==?= <zoe@acme.test>', ['zoe@acme.test']],
  ['', []],
  ['not an address', []],
];

t.test('every mailbox a From value names, groups included, in order', async (t) => {
  for (const [value, addresses] of cases) t.same(parseMailboxes(value).map((m) => m.address), addresses, JSON.stringify(value));
});

t.test('display names are decoded', async (t) => {
  t.same(parseMailboxes('=?UTF-8?B?Wm/Dqw==?= <zoe@acme.test>'), [{ name: 'Zoë', address: 'zoe@acme.test' }]);
});

t.test('a folded From is read whole', async (t) => {
  t.same(headerFromAddresses(Buffer.from('Subject: x\r\nFrom: App <app@acme.test>,\r\n CEO <ceo@globex.test>\r\n\r\n')), ['app@acme.test', 'ceo@globex.test']);
  t.same(headerFromAddresses(Buffer.from('Subject: x\r\n\r\n')), [], 'no From: none');
});
