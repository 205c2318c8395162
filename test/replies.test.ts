// Every reply the relay composes is declared once in relay/errors.ts with a stable id, is well formed, and
// the README's "What the client hears" table lists exactly those ids (both ways) with their codes.
import fs from 'node:fs';
import t from 'tap';
import { Replies, type SmtpReply, sanitizeUpstreamText } from '../relay/errors.js';

// Typed as every key of Replies: a reply added there without a sample here fails the type-check.
const samples: { readonly [K in keyof typeof Replies]: SmtpReply } = {
  authRequired: Replies.authRequired,
  authFailed: Replies.authFailed,
  badSenderAddress: Replies.badSenderAddress,
  badRecipientAddress: Replies.badRecipientAddress,
  senderTenantConflict: Replies.senderTenantConflict('a', 'b'),
  messageTooBig: Replies.messageTooBig(1024),
  mailLoop: Replies.mailLoop(50),
  severalFromHeaders: Replies.severalFromHeaders(2),
  tooManyFromAddresses: Replies.tooManyFromAddresses(11, 10),
  tooManySenderAddresses: Replies.tooManySenderAddresses(10),
  dkimFailedTemporary: Replies.dkimFailedTemporary,
  dkimFailedPermanent: Replies.dkimFailedPermanent,
  bareLineEndings: Replies.bareLineEndings,
  sourceRoute: Replies.sourceRoute,
  improperPipelining: Replies.improperPipelining,
  lineTooLong: Replies.lineTooLong,
  tooManyAuthFailures: Replies.tooManyAuthFailures,
  tooManyConnectionsFromIp: Replies.tooManyConnectionsFromIp,
  tooManyConnections: Replies.tooManyConnections,
  tooSlow: Replies.tooSlow,
  idleTimeout: Replies.idleTimeout,
  commandUnrecognized: Replies.commandUnrecognized,
  tooManyUnrecognizedCommands: Replies.tooManyUnrecognizedCommands,
  httpRequest: Replies.httpRequest,
  talkedTooSoon: Replies.talkedTooSoon,
  heloFirst: Replies.heloFirst,
  heloSyntax: Replies.heloSyntax,
  nestedMail: Replies.nestedMail,
  needMail: Replies.needMail,
  needRcpt: Replies.needRcpt,
  badParameter: Replies.badParameter('Duplicate SIZE parameter'),
  tooManyRecipients: Replies.tooManyRecipients(100),
  authNotOffered: Replies.authNotOffered,
  authNeedsTls: Replies.authNeedsTls,
  authTwice: Replies.authTwice,
  authMechanism: Replies.authMechanism,
  authSyntax: Replies.authSyntax,
  authAborted: Replies.authAborted,
  startTlsSyntax: Replies.startTlsSyntax,
  tlsActive: Replies.tlsActive,
  vrfySyntax: Replies.vrfySyntax,
  senderNotOfTenant: Replies.senderNotOfTenant('a@b.test', 'acme'),
  headerFromNotOfTenant: Replies.headerFromNotOfTenant('acme'),
  headerFromOfOtherTenant: Replies.headerFromOfOtherTenant('acme'),
  senderHeaderOfOtherTenant: Replies.senderHeaderOfOtherTenant('Sender', 'acme'),
  tenantRateExceeded: Replies.tenantRateExceeded('acme', 30),
  insufficientStorage: Replies.insufficientStorage,
  tenantSpoolFull: Replies.tenantSpoolFull('acme'),
  headerTooLarge: Replies.headerTooLarge,
  queued: Replies.queued('abc'),
  clientAborted: Replies.clientAborted,
  localError: Replies.localError,
  localErrorClosing: Replies.localErrorClosing,
  tenantLookupUnavailable: Replies.tenantLookupUnavailable,
  tenantLookupsExceeded: Replies.tenantLookupsExceeded,
  shuttingDown: Replies.shuttingDown,
  tenantGone: Replies.tenantGone('acme'),
  heldByLimit: Replies.heldByLimit('tenant acme is at its messagesPerMinute limit'),
  heldByHand: Replies.heldByHand('console: support-desk'),
  bounceAddressUnknown: Replies.bounceAddressUnknown,
  allSuppressed: Replies.allSuppressed,
  providerDelivered: Replies.providerDelivered('mailgun', '250 OK'),
  providerBounced: Replies.providerBounced('mailgun', '550 5.1.1 User unknown'),
  providerComplained: Replies.providerComplained('sendgrid', 'spamreport'),
  recipientSuppressed: Replies.recipientSuppressed('bounce: 550 5.1.1 User unknown'),
  deletedByHand: Replies.deletedByHand('console: support-desk'),
  delivered: Replies.delivered('up'),
  upstreamUnreachable: Replies.upstreamUnreachable('up'),
  upstreamTimeout: Replies.upstreamTimeout('up'),
  upstreamConnectionLost: Replies.upstreamConnectionLost('up'),
  upstreamTls: Replies.upstreamTls('up'),
  upstreamAuth: Replies.upstreamAuth('up'),
  upstreamTokenFailed: Replies.upstreamTokenFailed('up', 'invalid_client AADSTS7000215'),
  upstreamBasicAuthDisabled: Replies.upstreamBasicAuthDisabled('up'),
  upstreamSmtpAuthDisabled: Replies.upstreamSmtpAuthDisabled('up'),
  upstreamThrottled: Replies.upstreamThrottled('up', '421 4.7.28 Gmail has detected an unusual rate of mail'),
  upstreamQuotaExceeded: Replies.upstreamQuotaExceeded('up', '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException'),
  upstreamNo8BitMime: Replies.upstreamNo8BitMime('up'),
  upstreamNoSmtpUtf8: Replies.upstreamNoSmtpUtf8('up'),
  upstreamHostForbidden: Replies.upstreamHostForbidden('up', 'resolves to 127.0.0.1'),
  upstreamTempFail: Replies.upstreamTempFail('up', '421 busy'),
  upstreamRejected: Replies.upstreamRejected('up', 554, '554 no'),
  partlyDeferred: Replies.partlyDeferred(1, 2, 'x: 450'),
  partlyRejected: Replies.partlyRejected(1, 2, 'x: 550'),
  deliveryExpired: Replies.deliveryExpired('451 4.4.1 unreachable'),
};

/** The README table's rows: the reply column and the ids in the last column. */
function readmeRows(): { reply: string; ids: string[] }[] {
  const readme = fs.readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## What the client hears'));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| ---')));
  return table
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| ---') && !l.startsWith('| situation'))
    .map((l) => {
      const cells = l.split(' | ');
      return { reply: cells.at(-2) ?? '', ids: [...(cells.at(-1) ?? '').matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1] ?? '') };
    });
}

const rows = readmeRows();
const documented = new Map(rows.flatMap((r) => r.ids.map((id) => [id, r.reply] as const)));

for (const [name, r] of Object.entries(samples)) {
  t.test(`${name} (${r.id}) is a well-formed reply the README's table lists`, async (t) => {
    t.match(String(r.code), /^[245]\d\d$/);
    t.match(r.enhanced, /^[245]\.\d{1,3}\.\d{1,3}$/);
    t.equal(r.enhanced[0], String(r.code)[0], 'enhanced code of the same class as the reply code');
    t.notMatch(r.text, /[\r\n]/);
    t.match(r.id, /^[a-z0-9]+(-[a-z0-9]+)*$/, 'a kebab-case id');
    const reply = documented.get(r.id);
    t.ok(reply !== undefined, `README lists ${r.id}`);
    // The upstream's own 5xx is passed on: its row names the range instead of one code.
    if (r.id !== 'upstream-rejected') t.ok(reply?.includes(`${r.code} ${r.enhanced}`), `README's row for ${r.id} says ${r.code} ${r.enhanced}`);
  });
}

t.test('the README lists no id the table does not declare, and each once', async (t) => {
  const declared = new Set<string>(Object.values(samples).map((r) => r.id));
  const listed = rows.flatMap((r) => r.ids);
  t.same(listed.filter((id) => !declared.has(id)), [], 'no unknown id');
  t.equal(new Set(listed).size, listed.length, 'no id twice');
  t.equal(declared.size, Object.keys(samples).length, 'ids are unique in the table');
});

t.test('upstream text is cut to one printable line of bounded length', async (t) => {
  t.equal(sanitizeUpstreamText('550 5.1.1 no\r\nsuch\tuser\u0000'), '550 5.1.1 no such user');
  t.equal(sanitizeUpstreamText('x'.repeat(500)).length, 200);
});

t.test('clean text comes back as it is, and every unclean form is still cleaned', async (t) => {
  const full = (text: string, max = 200) => {
    const line = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').replace(/\s+/g, ' ').trim();
    return line.length > max ? `${line.slice(0, max - 3)}...` : line;
  };
  const cases = ['250 2.0.0 Ok: queued as 4ABC', 'user@example.com', '', ' ', 'a  b', ' a', 'a ', 'a\tb', 'a\u00a0b', 'a\u2028b', 'a\ufeff', '\ufeffa', 'a\u0085b', 'a\u007fb', 'x\r\ny', 'ünïcode ok', 'x'.repeat(200), 'x'.repeat(201)];
  // Names in ASCII: a raw U+2028 or NEL in a test's name would end its TAP line.
  const named = (text: string) => JSON.stringify(text).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  for (const text of cases) t.equal(sanitizeUpstreamText(text), full(text), named(text));
  for (const text of cases) t.equal(sanitizeUpstreamText(text, 5), full(text, 5), `${named(text)} cut at 5`);
});
