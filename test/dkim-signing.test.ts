// Platform DKIM: signed after every rewrite, with d= the final From domain by default, verifiable by
// mailauth's verifier and by dkimpy (an independent implementation), also as captured at a real upstream.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parseConfig } from '../config/load.js';
import { type TraceInfo } from '../relay/message/trace.js';
import { transformMessage } from '../relay/message/transform.js';
import { decide } from '../relay/routing/decide.js';
import { hasDkimpy, makeDkimKey, verifyWithDkimpy, verifyWithMailauth } from './helpers/dkim.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const rsa = makeDkimKey('rsa');
const ed25519 = makeDkimKey('ed25519');
const tenantKey = makeDkimKey('ed25519');
const records = {
  'platform._domainkey.acme.test': rsa.record,
  'ed._domainkey.globex.test': ed25519.record,
  'own._domainkey.initech.test': tenantKey.record,
};
const env = { PLATFORM_KEY: rsa.privateKeyPem, ED_KEY: ed25519.privateKeyPem, TENANT_KEY: tenantKey.privateKeyPem };

const yaml = (onFailure = 'send-unsigned', upstreamPort = 2525) => `
smarthost: { host: 127.0.0.1, port: ${upstreamPort}, tls: none }
dkim: { selector: platform, privateKey: "\${PLATFORM_KEY}", onFailure: ${onFailure} }
tenants:
  - id: acme
    match: { domains: [acme.test] }
    identity: { from: notifications@acme.test, displayName: Acme }
  - id: globex
    match: { domains: [globex.test] }
    dkim: { selector: ed, privateKey: "\${ED_KEY}" }
  - id: initech
    match: { domains: [initech.test] }
    dkim: { selector: own, privateKey: "\${TENANT_KEY}" }
  - id: self-signing
    match: { domains: [self.test] }
    dkim: { disablePlatformDkim: true }
`;

const trace: TraceInfo = { id: 'x', receivedAt: new Date(), byHost: 'relay.test', clientAddress: '127.0.0.1', tls: false, authenticated: false, recipients: ['c@example.com'] };
const message = (from: string) => Buffer.from(`From: App <${from}>\r\nTo: c@example.com\r\nSubject: Reset your password\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nYour code is 123456.\r\n`);

async function signed(from: string, onFailure?: string, body?: Buffer) {
  const config = parseConfig(yaml(onFailure), 'relay.yaml', env);
  const decision = decide({ mailFrom: from }, undefined, config);
  if (decision.kind !== 'route') throw new Error('refused');
  return transformMessage(body ?? message(from), decision, config, trace);
}

async function signedBytes(from: string): Promise<Buffer> {
  const r = await signed(from);
  if (r.kind !== 'ok') throw new Error(r.reason);
  return r.bytes;
}

t.test('RSA-2048: the signature verifies, with d= the rewritten From domain, relaxed/relaxed', async (t) => {
  const out = await signedBytes('app@acme.test');
  t.match(out.toString(), /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=acme\.test;/);
  t.match(out.toString(), /\bs=platform;/);
  t.match(await verifyWithMailauth(out, records), [{ result: 'pass', domain: 'acme.test', selector: 'platform' }]);
});

t.test('the signature covers From and is made after the rewrite', async (t) => {
  const out = (await signedBytes('app@acme.test')).toString();
  const dkimHeader = out.slice(0, out.indexOf('\r\nReceived:')).replace(/\r\n\s+/g, ' ');
  t.match(dkimHeader, /h=[^;]*\bFrom\b/i);
  t.match(out, /\r\nFrom: Acme <notifications@acme\.test>\r\n/);
});

t.test('ed25519: the signature verifies', async (t) => {
  const out = await signedBytes('app@globex.test');
  t.match(out.toString(), /^DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=globex\.test;/);
  t.match(await verifyWithMailauth(out, records), [{ result: 'pass', domain: 'globex.test' }]);
});

t.test("a tenant's own key is used in place of the platform's", async (t) => {
  const out = await signedBytes('app@initech.test');
  t.match(await verifyWithMailauth(out, records), [{ result: 'pass', domain: 'initech.test', selector: 'own' }]);
});

t.test('a header changed after signing fails verification', async (t) => {
  const out = (await signedBytes('app@acme.test')).toString().replace('Subject: Reset your password', 'Subject: Reset your passw0rd');
  t.match(await verifyWithMailauth(Buffer.from(out), records), [{ result: 'fail' }]);
});

t.test('disablePlatformDkim: the relay never signs', async (t) => {
  t.notMatch((await signedBytes('app@self.test')).toString(), /DKIM-Signature/i);
});

t.test('a message that cannot be signed follows dkim.onFailure', async (t) => {
  const noFrom = Buffer.from('To: c@example.com\r\nSubject: no from\r\n\r\nhi\r\n');
  const unsigned = await signed('app@globex.test', undefined, noFrom);
  t.match(unsigned, { kind: 'ok', warnings: [/sent unsigned: .*no From/] }, 'default: send unsigned, with a warning');
  t.notMatch(unsigned.kind === 'ok' ? unsigned.bytes.toString() : '', /DKIM-Signature/);
  t.match(await signed('app@globex.test', 'tempfail', noFrom), { kind: 'refused', reply: { code: 451, enhanced: '4.7.5' } });
  t.match(await signed('app@globex.test', 'reject', noFrom), { kind: 'refused', reply: { code: 554, enhanced: '5.7.5' } });
});

t.test('a bad key is refused at load, naming the key', async (t) => {
  t.throws(() => parseConfig(yaml(), 'relay.yaml', { ...env, PLATFORM_KEY: 'not a key' }), { message: /relay\.yaml:3:\d+: dkim\.privateKey: is not a PEM private key/ });
  t.throws(() => parseConfig('smarthost: { host: a.test, tls: none }\ntenants: [{ id: a, dkim: { selector: s } }]\n', 'relay.yaml', {}), {
    message: /tenants\[0\]\.dkim\.selector: there is no key to sign with/,
  });
});

t.test('the signature still verifies as the upstream received it, by mailauth and by dkimpy', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(yaml('send-unsigned', upstream.port), env);
  t.teardown(() => relay.close());
  const body = Buffer.concat([
    Buffer.from('From: App <app@acme.test>\r\nTo: c@example.com\r\nSubject: =?UTF-8?Q?R=C3=A9initialisation?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'),
    Buffer.from('Votre code : 123456\r\n.dot line\r\n  trailing spaces   \r\n\r\n\r\n', 'utf8'),
  ]);
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'c@example.com', raw: body });
  await sendThrough(relay.port, { from: 'app@globex.test', to: 'c@example.com', raw: body.toString('latin1').replace('app@acme.test', 'app@globex.test') });
  const [acme, globex] = upstream.received;
  t.match(await verifyWithMailauth(acme?.raw ?? Buffer.alloc(0), records), [{ result: 'pass', domain: 'acme.test' }]);
  t.match(await verifyWithMailauth(globex?.raw ?? Buffer.alloc(0), records), [{ result: 'pass', domain: 'globex.test' }]);

  if (!hasDkimpy()) {
    t.comment('python3-dkim is not installed (.ci/run installs it): dkimpy checks skipped');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dkimpy-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true }));
  t.ok(verifyWithDkimpy(acme?.raw ?? Buffer.alloc(0), records, dir), 'dkimpy: RSA signature passes');
  t.ok(verifyWithDkimpy(globex?.raw ?? Buffer.alloc(0), records, dir), 'dkimpy: ed25519 signature passes');
  const tampered = Buffer.from((acme?.raw ?? Buffer.alloc(0)).toString('latin1').replace('123456', '654321'), 'latin1');
  t.notOk(verifyWithDkimpy(tampered, records, dir), 'dkimpy: a changed body fails');
});
