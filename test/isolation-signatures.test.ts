// The platform's DKIM key vouches only for what a tenant owns. A tenant's app (no AUTH: a trusted
// network, as sidecars and fleets run) that writes another tenant's From is refused; a From nobody
// claims leaves unsigned; mail of no tenant is never signed as its From's domain; a tenant's (or a
// platform record's) signingDomain and From must be its own; and the headers the relay adds are covered
// by its signature. Real relay, real upstream, verified by mailauth's verifier.
import t, { type Test } from 'tap';
import { ConfigError, parseConfig } from '../config/load.js';
import { makeDkimKey, verifyWithMailauth } from './helpers/dkim.js';
import { runCli } from './helpers/cli.js';
import { type Platform, startPlatform } from './helpers/platform.js';
import { replyOf, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { openRawSession } from './helpers/smtp-client.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const platformKey = makeDkimKey('rsa');
const env = { PLATFORM_KEY: platformKey.privateKeyPem };
const records = {
  'platform._domainkey.acme.test': platformKey.record,
  'platform._domainkey.globex.test': platformKey.record,
  'platform._domainkey.bank.test': platformKey.record,
  'platform._domainkey.platform.test': platformKey.record,
};

const tenants = `
tenants:
  - { id: acme, match: { domains: [acme.test] } }
  - { id: globex, match: { domains: [globex.test] } }
  - { id: solo, match: { addresses: [alerts@solo.test] } }
`;

async function upstreamFor(t: Test): Promise<Upstream> {
  const u = await startUpstream();
  t.teardown(() => u.close());
  return u;
}

async function relayWith(t: Test, upstream: Upstream, extra = '', dkim = 'selector: platform, privateKey: "${PLATFORM_KEY}"'): Promise<TestRelay> {
  const relay = await startTestRelay(`smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\ndkim: { ${dkim} }\n${extra}\n${tenants}`, env);
  t.teardown(() => relay.close());
  return relay;
}

const mail = (from: string) => `From: ${from}\r\nTo: c@example.com\r\nSubject: Wire the money\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nToday.\r\n`;
const signatureOf = (raw: Buffer | undefined) => /^DKIM-Signature:.*(?:\r\n[ \t].*)*/m.exec(raw?.toString('latin1') ?? '')?.[0].replace(/\r\n[ \t]+/g, ' ');

t.test("a tenant's app without AUTH writing another tenant's From is refused, and nothing is signed as that tenant", async (t) => {
  const upstream = await upstreamFor(t);
  const relay = await relayWith(t, upstream);
  const reply = await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: 'c@example.com', raw: mail('CEO <ceo@globex.test>') }));
  t.match(reply, /^553 5\.7\.1 The From header is an address of another tenant; this message is sent as tenant acme/);
  t.notMatch(reply, /globex/, 'the other tenant is not named to the client');
  t.equal(upstream.received.length, 0);
  t.match(relay.logs.find((l) => l.event === 'refused' && l.replyId === 'header-from-of-other-tenant'), { tenant: 'acme', reason: /belongs to tenant globex/ });
});

t.test("another tenant's From written as the first line with a space before the colon ('From : ...', the obsolete form receivers still read as From) is refused too", async (t) => {
  const upstream = await upstreamFor(t);
  const relay = await relayWith(t, upstream);
  // mailsplit took a first line starting "From " for an mbox separator: not a header, so no check saw it.
  const reply = await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: 'c@example.com', raw: mail('CEO <ceo@globex.test>').replace(/^From:/, 'From :') }));
  t.match(reply, /^553 5\.7\.1 The From header is an address of another tenant; this message is sent as tenant acme/);
  t.equal(upstream.received.length, 0);
});

t.test("another tenant's address anywhere in the From is refused: second in a list, or inside a group", async (t) => {
  const upstream = await upstreamFor(t);
  const relay = await relayWith(t, upstream);
  // Only the first mailbox was checked, and a group (no address of its own) was not checked at all.
  for (const from of ['App <app@acme.test>, CEO <ceo@globex.test>', 'Board: CEO <ceo@globex.test>;', 'App <app@acme.test>, Board: ceo@globex.test;']) {
    const reply = await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: 'c@example.com', raw: mail(from) }));
    t.match(reply, /^553 5\.7\.1 The From header is an address of another tenant; this message is sent as tenant acme/, from);
  }
  t.equal(upstream.received.length, 0);
});

t.test("a bare CR inside the From cannot make the check and the receiver read different addresses: refused (reject), or repaired before the check reads it (normalize)", async (t) => {
  const upstream = await upstreamFor(t);
  // A raw session: nodemailer would repair the CR before it left the client.
  const send = async (port: number, from: string) => {
    const s = await openRawSession(port);
    t.teardown(() => s.close());
    await s.send('EHLO client.test\r\n');
    await s.send('MAIL FROM:<app@acme.test>\r\n');
    await s.send('RCPT TO:<c@example.com>\r\n');
    await s.send('DATA\r\n');
    return s.send(`${mail(from)}.\r\n`);
  };
  const froms = ['app@acme.test,\r ceo@globex.test', 'App <app@acme.test>\r, CEO <ceo@globex.test>', 'app@acme.test\r<ceo@globex.test>'];
  const reject = await relayWith(t, upstream);
  for (const from of froms) t.match(await send(reject.port, from), /^550 5\.5\.2 /, JSON.stringify(from));
  t.equal(upstream.received.length, 0);
  const normalize = await relayWith(t, upstream, 'inbound: { bareLineEndings: normalize }');
  // The CR becomes CRLF before the header block is read: a fold joins the From (and is checked), anything
  // else starts a line of its own that no reader takes for a From.
  t.match(await send(normalize.port, froms[0] ?? ''), /^553 5\.7\.1 /);
  for (const [i, from] of froms.slice(1).entries()) {
    t.match(await send(normalize.port, from), /^250 /, JSON.stringify(from));
    const fromLine = /^From:.*(?:\r\n[ \t].*)*/im.exec(upstream.received[i]?.raw.toString('latin1') ?? '')?.[0];
    t.match(fromLine, /^From: /i, 'it was delivered with a From');
    t.notMatch(fromLine, /globex/, 'what leaves as the From names only the tenant');
  }
});

t.test("another tenant's address in Sender, Resent-From or Resent-Sender is refused (readers show them beside the From); the tenant's own or an unclaimed one passes", async (t) => {
  const upstream = await upstreamFor(t);
  const relay = await relayWith(t, upstream);
  const withHeaders = (lines: string) => mail('App <app@acme.test>').replace('Subject:', `${lines}Subject:`);
  // Before, only the From was checked: each of these was delivered, signed d=acme.test.
  for (const [lines, header] of [
    ['Sender: CEO <ceo@globex.test>\r\n', 'Sender'],
    ['Resent-From: ceo@globex.test\r\nResent-Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n', 'Resent-From'],
    ['Resent-From: app@acme.test\r\nResent-Sender: Board <board@globex.test>\r\n', 'Resent-Sender'],
    ['Resent-From: app@acme.test\r\nResent-From: app@acme.test, ceo@globex.test\r\n', 'Resent-From'],
    ['Sender : ceo@globex.test\r\n', 'Sender'],
  ] as const) {
    const reply = await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: 'c@example.com', raw: withHeaders(lines) }));
    t.match(reply, new RegExp(`^553 5\\.7\\.1 The ${header} header is an address of another tenant; this message is sent as tenant acme`), JSON.stringify(lines));
  }
  t.equal(upstream.received.length, 0);
  t.match(relay.logs.find((l) => l.event === 'refused' && l.replyId === 'sender-header-of-other-tenant'), { tenant: 'acme', reason: /^Sender ceo@globex\.test belongs to tenant globex/ });
  const many = Array.from({ length: 11 }, (_, i) => `a${i}@lists.example`).join(', ');
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: 'c@example.com', raw: withHeaders(`Resent-From: ${many}\r\n`) })), /^550 5\.6\.0 The Sender and Resent- headers name more than 10 addresses/);
  for (const lines of ['Sender: App <app@acme.test>\r\n', 'Sender: tickets@helpdesk.example\r\n']) {
    t.match((await sendThrough(relay.port, { from: 'app@acme.test', to: 'c@example.com', raw: withHeaders(lines) })).response, /^250 /, JSON.stringify(lines));
  }
  t.match(signatureOf(upstream.received[1]?.raw), /d=acme\.test;/, 'an unclaimed Sender does not change the signing');
});

t.test('a From naming more than 10 addresses is refused with 550 5.6.0 (each unknown one could cost a lookup)', async (t) => {
  const upstream = await upstreamFor(t);
  const relay = await relayWith(t, upstream);
  const many = Array.from({ length: 11 }, (_, i) => `a${i}@acme.test`).join(', ');
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: 'c@example.com', raw: mail(many) })), /^550 5\.6\.0 The From header names 11 addresses; at most 10 are allowed/);
  t.equal(upstream.received.length, 0);
});

t.test("a From naming an address no tenant claims leaves unsigned, also beside the tenant's own: the signature vouches for every author; the tenant's own From is signed and verifies", async (t) => {
  const upstream = await upstreamFor(t);
  const relay = await relayWith(t, upstream);
  const unclaimed: [string, RegExp][] = [
    ['Bank <ceo@bank.test>', /sent unsigned: the From ceo@bank\.test is not an address of tenant acme/],
    ['App <app@acme.test>, Bank <security@bank.example>', /sent unsigned: the From security@bank\.example is not an address of tenant acme/],
  ];
  for (const [i, [from, warning]] of unclaimed.entries()) {
    await sendThrough(relay.port, { from: 'app@acme.test', to: 'c@example.com', raw: mail(from) });
    t.equal(signatureOf(upstream.received[i]?.raw), undefined, `${from}: not signed`);
    t.match(relay.logs.filter((l) => l.event === 'message-warning')[i], { warning }, `${from}: says why`);
  }
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'c@example.com', raw: mail('Acme <app@acme.test>') });
  const own = upstream.received.at(-1)?.raw ?? Buffer.alloc(0);
  t.match(signatureOf(own), /d=acme\.test;/);
  t.match(await verifyWithMailauth(own, records), [{ result: 'pass', domain: 'acme.test' }]);
});

t.test('a tenant recognised by one address is signed for that address only, not for its whole domain', async (t) => {
  const upstream = await upstreamFor(t);
  const relay = await relayWith(t, upstream);
  await sendThrough(relay.port, { from: 'alerts@solo.test', to: 'c@example.com', raw: mail('Boss <boss@solo.test>') });
  await sendThrough(relay.port, { from: 'alerts@solo.test', to: 'c@example.com', raw: mail('Alerts <alerts@solo.test>') });
  t.equal(signatureOf(upstream.received[0]?.raw), undefined, 'boss@solo.test is not the tenant\'s');
  t.match(signatureOf(upstream.received[1]?.raw), /d=solo\.test;/);
});

t.test("mail of no tenant is never signed as its From's domain; with the platform's own signingDomain it is signed as the platform", async (t) => {
  const upstream = await upstreamFor(t);
  const relay = await relayWith(t, upstream);
  await sendThrough(relay.port, { from: 'someone@random.test', to: 'c@example.com', raw: mail('CEO <ceo@globex.test>') });
  t.equal(upstream.received.length, 1, 'not a tenant: routed to the smarthost');
  t.equal(signatureOf(upstream.received[0]?.raw), undefined, 'not signed d=globex.test');
  const asPlatform = await relayWith(t, upstream, '', 'selector: platform, signingDomain: platform.test, privateKey: "${PLATFORM_KEY}"');
  await sendThrough(asPlatform.port, { from: 'someone@random.test', to: 'c@example.com', raw: mail('CEO <ceo@globex.test>') });
  t.match(signatureOf(upstream.received[1]?.raw), /d=platform\.test;/);
});

t.test('a signingDomain or From that is not the tenant\'s own: refused in the config files, and in a platform record', async (t) => {
  const errorOf = (yaml: string) => {
    try {
      parseConfig(yaml, 'relay.yaml', env);
      return '';
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.message;
    }
  };
  const base = 'smarthost: { host: 127.0.0.1, tls: none }\ndkim: { selector: platform, privateKey: "${PLATFORM_KEY}" }\ntenants:\n  - { id: globex, match: { domains: [globex.test] } }\n';
  t.match(errorOf(`${base}  - { id: evil, match: { domains: [evil.test] }, dkim: { signingDomain: globex.test } }\n`), /tenants\[1\]\.dkim\.signingDomain: "globex\.test" is not a domain of this tenant/);
  t.match(errorOf(`${base}  - { id: evil, match: { domains: [evil.test] }, identity: { from: ceo@globex.test } }\n`), /tenants\[1\]\.identity\.from: "ceo@globex\.test" is an address of tenant "globex"/);
  t.equal(errorOf(`${base}  - { id: fine, match: { domains: ["*.fine.test"] }, dkim: { signingDomain: mail.fine.test } }\n`), '', 'a subdomain of its own pattern is its own');

  const upstream = await upstreamFor(t);
  let record: unknown;
  const platform: Platform = await startPlatform(() => ({ body: record }));
  t.teardown(() => platform.close());
  const relay = await relayWith(t, upstream, `tenantSource: { url: "${platform.url}", token: t, upstreamHosts: { allow: [127.0.0.1/32], ports: [] } }`);
  const evilRecord = (extra: Record<string, unknown>) => ({ id: 'evil', match: { domains: ['evil.test'] }, ...extra });
  for (const [what, extra] of [
    ['signingDomain', { dkim: { signingDomain: 'globex.test' } }],
    ['identity.from', { identity: { from: 'ceo@globex.test' } }],
    ['a domain the config files claim', { match: { domains: ['evil.test', 'globex.test'] } }],
    ['smarthost fallback', { delivery: { fallbackToSmarthostAfterMinutes: 1 } }],
  ] as const) {
    record = evilRecord(extra);
    t.match(await replyOf(sendThrough(relay.port, { from: `x${what.length}@evil.test`, to: 'c@example.com', raw: mail('x <x@evil.test>') })), /^451 4\.3\.0 /, `a record with ${what} of its own choosing is refused`);
  }
  t.equal(upstream.received.length, 0);
  t.match(relay.logs.filter((l) => l.event === 'tenant-lookup').map((l) => (l.problems as string[] | undefined)?.join(' ')), [
    /dkim\.signingDomain: "globex\.test" is not a domain of this tenant/,
    /identity\.from: is not an address the record claims/,
    /match\.domains\.1: is claimed by a tenant of the config files/,
    /delivery\.fallbackToSmarthostAfterMinutes: is only for tenants in the config files/,
  ]);
});

t.test("a platform tenant's message wearing another platform tenant's From is refused: the relay asks whose it is", async (t) => {
  const upstream = await upstreamFor(t);
  const platform = await startPlatform((_by, value) => (value.endsWith('@evil.test') ? { body: { id: 'evil', match: { domains: ['evil.test'] } } } : value.endsWith('@victim.test') ? { body: { id: 'victim', match: { domains: ['victim.test'] } } } : { status: 404 }));
  t.teardown(() => platform.close());
  const relay = await relayWith(t, upstream, `tenantSource: { url: "${platform.url}", token: t, upstreamHosts: { allow: [127.0.0.1/32], ports: [] } }`);
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@evil.test', to: 'c@example.com', raw: mail('Victim <ceo@victim.test>') })), /^553 5\.7\.1 The From header is an address of another tenant; this message is sent as tenant evil/);
  t.same(platform.requests, ['sender=app@evil.test', 'sender=ceo@victim.test']);
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@evil.test', to: 'c@example.com', raw: mail('Evil <news@evil.test>, Victim <cfo@victim.test>') })), /^553 5\.7\.1 /, 'second in the list: asked about too, and refused');
  const withSender = mail('Evil <news@evil.test>').replace('Subject:', 'Sender: Victim <cso@victim.test>\r\nSubject:');
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@evil.test', to: 'c@example.com', raw: withSender })), /^553 5\.7\.1 The Sender header is an address of another tenant/, 'in the Sender: asked about too, and refused');
  t.ok(platform.requests.includes('sender=cso@victim.test'));
  await sendThrough(relay.port, { from: 'app@evil.test', to: 'c@example.com', raw: mail('Evil <news@evil.test>') });
  t.match(signatureOf(upstream.received[0]?.raw), /d=evil\.test;/, 'its own From: signed');
});

t.test("the relay's own headers (original From, route header) are in h= and over-signed: changing either breaks the signature", async (t) => {
  const upstream = await upstreamFor(t);
  const rewriting = await startTestRelay(
    `smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\ndkim: { selector: platform, privateKey: "\${PLATFORM_KEY}" }\nmessage: { originalFromHeader: X-Original-From, traceHeader: X-Tenant-Relay-Route }\ntenants:\n  - { id: acme, match: { domains: [acme.test] }, identity: { from: notifications@acme.test } }\n`,
    env,
  );
  t.teardown(() => rewriting.close());
  await sendThrough(rewriting.port, { from: 'app@acme.test', to: 'c@example.com', raw: mail('Jane <jane@acme.test>') });
  const raw = upstream.received[0]?.raw ?? Buffer.alloc(0);
  const h = /\bh=([^;]+);/.exec(signatureOf(raw) ?? '')?.[1]?.replace(/\s+/g, '') ?? '';
  t.equal(h.split(':').filter((n) => n.toLowerCase() === 'x-original-from').length, 2, 'X-Original-From listed once more than it appears');
  t.equal(h.split(':').filter((n) => n.toLowerCase() === 'x-tenant-relay-route').length, 2, 'the route header too');
  t.match(await verifyWithMailauth(raw, records), [{ result: 'pass' }], 'as sent: passes');
  const text = raw.toString('latin1');
  const forged = (from: string, to: string) => Buffer.from(text.replace(from, to), 'latin1');
  t.match(await verifyWithMailauth(forged('X-Original-From: Jane <jane@acme.test>', 'X-Original-From: The CEO <ceo@acme.test>'), records), [{ result: 'fail' }], 'another original author: fails');
  t.match(await verifyWithMailauth(forged('tenant=acme', 'tenant=globex'), records), [{ result: 'fail' }], 'another tenant in the route header: fails');
  t.match(await verifyWithMailauth(Buffer.from(`X-Tenant-Relay-Route: tenant=globex; upstream=globex\r\n${text}`, 'latin1'), records), [{ result: 'fail' }], 'a route header added above: fails');
});

t.test('explain says what is signed and why', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'explain-dkim-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, `smarthost: { host: 127.0.0.1, tls: none }\ndkim: { selector: platform, privateKey: "\${file:${path.join(dir, 'key.pem')}}" }\n${tenants}`);
  fs.writeFileSync(path.join(dir, 'key.pem'), platformKey.privateKeyPem);
  const own = await runCli(['explain', '--config', file, '--from', 'app@acme.test', '--header-from', 'App <app@acme.test>']);
  t.match(own.stdout, /^dkim: {5}sign with the platform key \(rsa-sha256\), s=platform, d=the From domain, only when the From is tenant acme's own \(acme\.test\); any other From leaves unsigned$/m);
  t.match(own.stdout, /^header: {3}DKIM-Signature: .*d=acme\.test;/m);
  t.match(own.stdout, /^from: {5}another tenant's address is refused \(553 5\.7\.1\); one nobody claims goes unsigned; in Sender and Resent- headers another tenant's address is refused too$/m);
  const foreign = await runCli(['explain', '--config', file, '--from', 'app@acme.test', '--header-from', 'Bank <ceo@bank.test>']);
  t.match(foreign.stdout, /^warning: {2}sent unsigned: the From ceo@bank\.test is not an address of tenant acme$/m);
  t.notMatch(foreign.stdout, /DKIM-Signature/);
  const other = await runCli(['explain', '--config', file, '--from', 'app@acme.test', '--header-from', 'CEO <ceo@globex.test>']);
  t.equal(other.code, 1);
  t.match(other.stdout, /^refused: {2}553 5\.7\.1 The From header is an address of another tenant/m);
  const nobody = await runCli(['explain', '--config', file, '--from', 'x@random.test']);
  t.match(nobody.stdout, /^dkim: {5}off: mail of no tenant is signed only as the platform/m);
});
