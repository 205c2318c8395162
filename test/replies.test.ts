// Every reply the relay composes is declared in relay/errors.ts, is well formed, and is documented in
// the README's "What the client hears" table.
import fs from 'node:fs';
import t from 'tap';
import { Replies, type SmtpReply, sanitizeUpstreamText } from '../relay/errors.js';

const readme = fs.readFileSync('README.md', 'utf8');
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
  dkimFailedTemporary: Replies.dkimFailedTemporary,
  dkimFailedPermanent: Replies.dkimFailedPermanent,
  bareLineEndings: Replies.bareLineEndings,
  sourceRoute: Replies.sourceRoute,
  improperPipelining: Replies.improperPipelining,
  tooManyAuthFailures: Replies.tooManyAuthFailures,
  tooManyConnectionsFromIp: Replies.tooManyConnectionsFromIp,
  tooSlow: Replies.tooSlow,
  senderNotOfTenant: Replies.senderNotOfTenant('a@b.test', 'acme'),
  headerFromNotOfTenant: Replies.headerFromNotOfTenant('acme'),
  tenantRateExceeded: Replies.tenantRateExceeded('acme'),
  insufficientStorage: Replies.insufficientStorage,
  headerTooLarge: Replies.headerTooLarge,
  queued: Replies.queued('abc'),
  clientAborted: Replies.clientAborted,
  localError: Replies.localError,
  tenantLookupUnavailable: Replies.tenantLookupUnavailable,
  shuttingDown: Replies.shuttingDown,
  delivered: Replies.delivered('up'),
  upstreamUnreachable: Replies.upstreamUnreachable('up'),
  upstreamTimeout: Replies.upstreamTimeout('up'),
  upstreamConnectionLost: Replies.upstreamConnectionLost('up'),
  upstreamTls: Replies.upstreamTls('up'),
  upstreamAuth: Replies.upstreamAuth('up'),
  upstreamNo8BitMime: Replies.upstreamNo8BitMime('up'),
  upstreamNoSmtpUtf8: Replies.upstreamNoSmtpUtf8('up'),
  upstreamHostForbidden: Replies.upstreamHostForbidden('up', 'resolves to 127.0.0.1'),
  upstreamTempFail: Replies.upstreamTempFail('up', '421 busy'),
  upstreamRejected: Replies.upstreamRejected('up', 554, '554 no'),
  partlyDeferred: Replies.partlyDeferred(1, 2, 'x: 450'),
  partlyRejected: Replies.partlyRejected(1, 2, 'x: 550'),
};

for (const [name, r] of Object.entries(samples)) {
  t.test(`${name} is a well-formed reply the README documents`, async (t) => {
    t.match(String(r.code), /^[245]\d\d$/);
    t.match(r.enhanced, /^[245]\.\d{1,3}\.\d{1,3}$/);
    t.equal(r.enhanced[0], String(r.code)[0], 'enhanced code of the same class as the reply code');
    t.notMatch(r.text, /[\r\n]/);
    t.ok(readme.includes(`${r.code} ${r.enhanced}`), `README mentions ${r.code} ${r.enhanced}`);
  });
}

t.test('upstream text is cut to one printable line of bounded length', async (t) => {
  t.equal(sanitizeUpstreamText('550 5.1.1 no\r\nsuch\tuser\u0000'), '550 5.1.1 no such user');
  t.equal(sanitizeUpstreamText('x'.repeat(500)).length, 200);
});
