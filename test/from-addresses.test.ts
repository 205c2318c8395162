// What a From names, as the tenant checks read it: every mailbox a reader would see, in order. A list's
// second address and a group's members count as much as the first (a check of only the first let another
// tenant's address through), and the rewrite takes the first as the author.
import t from 'tap';
import { agentAddresses, fromAddresses, parseMailboxes } from '../relay/message/addresses.js';
import { HeaderBlock } from '../relay/message/header-block.js';

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
  t.same(fromAddresses(HeaderBlock.parse(Buffer.from('Subject: x\r\nFrom: App <app@acme.test>,\r\n CEO <ceo@globex.test>\r\n\r\n'))), ['app@acme.test', 'ceo@globex.test']);
  t.same(fromAddresses(HeaderBlock.parse(Buffer.from('Subject: x\r\n\r\n'))), [], 'no From: none');
});

t.test('the agent headers (Sender, Resent-From, Resent-Sender): every line of each, every mailbox of a line, folded lines whole, and no more than the limit', async (t) => {
  const agents = (block: string, limit = 10) => agentAddresses(HeaderBlock.parse(Buffer.from(`${block}\r\n`)), limit).map((a) => `${a.header} ${a.address}`);
  const cases: [string, string[]][] = [
    ['From: a@acme.test\r\nSubject: x\r\n', []],
    ['Sender: S <s@acme.test>\r\n', ['Sender s@acme.test']],
    ['SENDER : s@acme.test\r\n', ['Sender s@acme.test']],
    ['Resent-From: r1@acme.test\r\nResent-Sender: rs@acme.test\r\nResent-From: r2@acme.test,\r\n r3@globex.test\r\n', ['Resent-From r1@acme.test', 'Resent-From r2@acme.test', 'Resent-From r3@globex.test', 'Resent-Sender rs@acme.test']],
    ['Sender: s@acme.test\r\nSender: t@globex.test\r\n', ['Sender s@acme.test', 'Sender t@globex.test']],
    ['Resent-From: Board: a@globex.test, b@globex.test;\r\n', ['Resent-From a@globex.test', 'Resent-From b@globex.test']],
  ];
  for (const [block, expected] of cases) t.same(agents(block), expected, JSON.stringify(block));
  t.equal(agents(`Resent-From: ${Array.from({ length: 50 }, (_, i) => `a${i}@x.test`).join(', ')}\r\n`, 10).length, 11, 'stops one past the limit: enough to refuse');
});
