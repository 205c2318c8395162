// Forwarding in session: each message reaches the upstream its tenant owns, with that tenant's
// credentials, or the global smarthost when no tenant (or no tenant upstream) applies.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { hashPassword } from '../relay/inbound/passwords.js';
import { makeTestCerts } from './helpers/certs.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { openRawSession } from './helpers/smtp-client.js';
import { startUpstream } from './helpers/upstream.js';

const certs = makeTestCerts();
const smarthost = await startUpstream();
const acme = await startUpstream({ tls: 'starttls', cert: certs.server, users: { 'acme-relay': 'acme-secret' } });
const globex = await startUpstream({ tls: 'implicit', cert: certs.server, users: { 'globex-relay': 'globex-secret' } });
const initech = await startUpstream();

const appHash = await hashPassword('app-pass');
const config = (conflict: string) => `
inbound:
  users:
    - { username: globex-app, passwordHash: "${appHash}" }
identification: { conflict: ${conflict} }
smarthost: { host: 127.0.0.1, port: ${smarthost.port}, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test, "*.acme.test"] }
    upstream: { host: 127.0.0.1, port: ${acme.port}, tls: starttls, username: acme-relay, password: "\${ACME_PASSWORD}", ca: ${certs.caFile} }
  - id: globex
    match: { authUsers: [globex-app], addresses: [alerts@globex.test] }
    upstream: { host: 127.0.0.1, port: ${globex.port}, tls: implicit, username: globex-relay, password: globex-secret, ca: ${certs.caFile} }
  - id: initech
    match: { addresses: [Reports@Initech.test] }
    upstream: { host: 127.0.0.1, port: ${initech.port}, tls: none }
  - id: umbrella
    match: { domains: [umbrella.test] }
  - id: hooli
    match: { domains: [hooli.test] }
    upstream: { host: 127.0.0.1, port: ${initech.port}, tls: none }
    identity: { from: mailer@hooli.test, rewriteEnvelopeSender: true }
`;
const relay = await startTestRelay(config('refuse'), { ACME_PASSWORD: 'acme-secret' });
const strictFrom = await startTestRelay(config('refuse').replace('inbound:\n', 'inbound:\n  checkHeaderFrom: true\n'), { ACME_PASSWORD: 'acme-secret' });
const preferAuth = await startTestRelay(config('prefer-auth'), { ACME_PASSWORD: 'acme-secret' });
const app = { user: 'globex-app', pass: 'app-pass' };

t.teardown(async () => {
  await Promise.all([relay.close(), preferAuth.close(), strictFrom.close()]);
  await Promise.all([smarthost, acme, globex, initech].map((u) => u.close()));
});

const last = (u: { received: { mailFrom: string; rcptTo: string[]; user: string | undefined; secure: boolean; raw: Buffer }[] }) => u.received.at(-1);

t.test("a sender domain routes to the tenant's upstream over STARTTLS with the tenant's credentials", async (t) => {
  const info = await sendThrough(relay.port, { from: 'billing@acme.test', to: 'customer@example.com' });
  t.match(info.response, /^250 2\.0\.0 .*acme/);
  t.match(last(acme), { mailFrom: 'billing@acme.test', rcptTo: ['customer@example.com'], user: 'acme-relay', secure: true });
});

t.test('a subdomain of a claimed "*.domain" routes to the same tenant', async (t) => {
  const before = acme.received.length;
  await sendThrough(relay.port, { from: 'news@eu.mail.acme.test', to: 'customer@example.com' });
  t.equal(acme.received.length, before + 1);
  t.equal(last(acme)?.mailFrom, 'news@eu.mail.acme.test');
});

t.test('an exact sender address routes to its tenant, whatever its letter case', async (t) => {
  await sendThrough(relay.port, { from: 'REPORTS@initech.TEST', to: 'boss@example.com' });
  t.match(last(initech), { mailFrom: 'REPORTS@initech.test', rcptTo: ['boss@example.com'], user: undefined });
});

t.test('an AUTH user routes to its tenant over implicit TLS with that tenant\'s credentials', async (t) => {
  await sendThrough(relay.port, { from: 'alerts@globex.test', to: 'x@example.com', auth: app });
  t.match(last(globex), { mailFrom: 'alerts@globex.test', user: 'globex-relay', secure: true });
});

t.test("a tenant's user may not send as an address no tenant claims: 553 5.7.1", async (t) => {
  const reply = await replyOf(sendThrough(relay.port, { from: 'ceo@bank.test', to: 'x@example.com', auth: app }));
  t.match(reply, /^553 5\.7\.1 Sender ceo@bank\.test is not an address of tenant globex/);
});

t.test('a tenant without its own upstream sends through the global smarthost', async (t) => {
  const info = await sendThrough(relay.port, { from: 'hr@umbrella.test', to: 'x@example.com' });
  t.match(info.response, /smarthost/);
  t.match(last(smarthost), { mailFrom: 'hr@umbrella.test', user: undefined });
});

t.test('a sender that no tenant claims sends through the global smarthost', async (t) => {
  await sendThrough(relay.port, { from: 'noreply@platform.test', to: 'x@example.com' });
  t.equal(last(smarthost)?.mailFrom, 'noreply@platform.test');
});

t.test('AUTH and sender naming different tenants is refused with 553 5.7.1 by default', async (t) => {
  const before = acme.received.length + globex.received.length;
  const reply = await replyOf(sendThrough(relay.port, { from: 'billing@acme.test', to: 'x@example.com', auth: app }));
  t.match(reply, /^553 5\.7\.1 Sender belongs to tenant acme, but you authenticated as tenant globex/);
  t.equal(acme.received.length + globex.received.length, before, 'nothing forwarded');
});

t.test("with checkHeaderFrom, a tenant user's From header must be the tenant's too", async (t) => {
  const forged = 'From: The CEO <ceo@acme.test>\r\nSubject: urgent\r\n\r\nwire it\r\n';
  const reply = await replyOf(sendThrough(strictFrom.port, { from: 'alerts@globex.test', to: 'x@example.com', auth: app, raw: forged }));
  t.match(reply, /^553 5\.7\.1 The From header is an address of another tenant; this message is sent as tenant globex/);
  const nobodys = 'From: Someone <someone@nobody.test>\r\nSubject: hi\r\n\r\nhi\r\n';
  t.match(await replyOf(sendThrough(strictFrom.port, { from: 'alerts@globex.test', to: 'x@example.com', auth: app, raw: nobodys })), /^553 5\.7\.1 The From header is not an address of tenant globex/);
  const own = 'From: Alerts <alerts@globex.test>\r\nSubject: fine\r\n\r\nok\r\n';
  t.match((await sendThrough(strictFrom.port, { from: 'alerts@globex.test', to: 'x@example.com', auth: app, raw: own })).response, /^250 /);
});

t.test("with conflict: prefer-auth, the AUTH tenant wins over the sender, but its message may not wear the other tenant's From", async (t) => {
  await sendThrough(preferAuth.port, { from: 'billing@acme.test', to: 'x@example.com', auth: app, raw: 'From: <alerts@globex.test>\r\nSubject: x\r\n\r\nx\r\n' });
  t.match(last(globex), { mailFrom: 'billing@acme.test', user: 'globex-relay' });
  t.match(await replyOf(sendThrough(preferAuth.port, { from: 'billing@acme.test', to: 'x@example.com', auth: app })), /^553 5\.7\.1 The From header is an address of another tenant/);
});

t.test("with rewriteEnvelopeSender, the upstream sees the tenant's address in MAIL FROM and in From", async (t) => {
  await sendThrough(relay.port, { from: 'app@hooli.test', to: 'x@example.com' });
  const got = last(initech);
  t.equal(got?.mailFrom, 'mailer@hooli.test');
  t.match(got?.raw.toString(), /\r\nFrom: mailer@hooli\.test\r\n/);
  t.match(got?.raw.toString(), /\r\nReply-To: app@hooli\.test\r\n/, 'replies still reach the original author');
});

t.test('the null sender is forwarded as <>', async (t) => {
  const s = await openRawSession(relay.port);
  t.teardown(() => s.close());
  await s.send('EHLO client.test\r\n');
  t.match(await s.send('MAIL FROM:<>\r\n'), /^250/);
  t.match(await s.send('RCPT TO:<bounce-target@example.com>\r\n'), /^250/);
  t.match(await s.send('DATA\r\n'), /^354/);
  t.match(await s.send('Subject: bounce\r\n\r\nundeliverable\r\n.\r\n'), /^250 2\.0\.0/);
  t.match(last(smarthost), { mailFrom: '', rcptTo: ['bounce-target@example.com'] });
});

t.test('an 8-bit body with dot lines arrives byte-identical, to every recipient in one transaction', async (t) => {
  const body = Buffer.concat([
    Buffer.from('From: <billing@acme.test>\r\nTo: a@example.com\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'),
    Buffer.from('Grüße, café, 日本語\r\n.\r\n..two dots\r\n.leading dot\r\n', 'utf8'),
    Buffer.from([0xe9, 0x80, 0xff, 0x0d, 0x0a]),
  ]);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  await sendThrough(relay.port, { from: 'billing@acme.test', to: ['a@example.com', 'b@example.com'], raw: body });
  const got = last(acme)?.raw ?? Buffer.alloc(0);
  t.same(last(acme)?.rcptTo, ['a@example.com', 'b@example.com']);
  // The relay adds its Received line on top; everything after it is what the client sent.
  t.match(got.toString('latin1'), /^Received: from /);
  const afterTrace = got.subarray(got.indexOf(body.subarray(0, 20)));
  t.equal(sha(afterTrace), sha(body));
});

t.test('a message over 1 MiB is staged on disk, not held in memory, arrives byte-identical, and leaves no temp file', async (t) => {
  const line = 'Line of a large report, with a leading dot next:\r\n.dot line\r\n';
  const body = Buffer.from(`From: <billing@acme.test>\r\nTo: a@example.com\r\nSubject: big\r\n\r\n${line.repeat(Math.ceil((3 * 1024 * 1024) / line.length))}`);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  t.match((await sendThrough(relay.port, { from: 'billing@acme.test', to: 'a@example.com', raw: body })).response, /^250 /);
  const got = last(acme)?.raw ?? Buffer.alloc(0);
  t.equal(sha(got.subarray(got.indexOf(body.subarray(0, 20)))), sha(body));
  t.same(fs.readdirSync(path.join(relay.spoolDir, 'tmp')), [], 'the staged copies are removed');
});

t.test('each message outcome is logged once with tenant, upstream and per-recipient status, and no password', async (t) => {
  const lines = relay.logs.filter((l) => l.event === 'message');
  t.ok(lines.length >= 5);
  t.match(lines.find((l) => l.tenant === 'acme'), { upstream: 'acme', recipients: [{ status: 'sent' }] });
  const all = JSON.stringify(relay.logs);
  t.notMatch(all, /acme-secret|globex-secret|app-pass/);
});
