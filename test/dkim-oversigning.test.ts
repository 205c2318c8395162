// A platform signature nobody can reuse: From, Reply-To, Subject and the other headers a reader sees are
// listed in h= once more than the message has them, so a second instance added above the signed one
// breaks the signature, for mailauth's verifier and for dkimpy alike, RSA and ed25519, on the bytes a
// real upstream received.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dkimSign } from 'mailauth';
import t from 'tap';
import { OVERSIGNED_HEADERS } from '../relay/message/dkim.js';
import { hasDkimpy, makeDkimKey, verifyWithDkimpy, verifyWithMailauth } from './helpers/dkim.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const keys = { rsa: makeDkimKey('rsa'), ed25519: makeDkimKey('ed25519') };
const records = { 'rsa._domainkey.acme.test': keys.rsa.record, 'ed._domainkey.acme.test': keys.ed25519.record };
const dkimpy = hasDkimpy();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-oversign-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

const upstream = await startUpstream();
t.teardown(() => upstream.close());

/** One message signed by the relay with the given key, as the upstream received it. */
async function signedAtUpstream(type: 'rsa' | 'ed25519'): Promise<string> {
  const selector = type === 'rsa' ? 'rsa' : 'ed';
  const relay = await startTestRelay(
    `smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\ndkim: { selector: ${selector}, privateKey: "\${KEY}" }\ntenants: [{ id: acme, match: { domains: [acme.test] } }]\n`,
    { KEY: keys[type].privateKeyPem },
  );
  try {
    const raw = `From: Acme <billing@acme.test>\r\nTo: customer@example.com\r\nSubject: Your invoice\r\nDate: Tue, 01 Dec 2026 09:00:00 +0000\r\nMessage-ID: <inv-1@acme.test>\r\n\r\nPay here: https://acme.test/pay\r\n`;
    await sendThrough(relay.port, { from: 'billing@acme.test', to: 'customer@example.com', raw });
    return upstream.received.at(-1)?.raw.toString('latin1') ?? '';
  } finally {
    await relay.close();
  }
}

/** `line` added above the header the signature covers (right after the DKIM-Signature), where readers look first. */
function withHeaderAbove(message: string, line: string): Buffer {
  const signatureEnd = message.search(/\r\n(?![ \t])(?!DKIM-Signature)/) + 2;
  return Buffer.from(`${message.slice(0, signatureEnd)}${line}\r\n${message.slice(signatureEnd)}`, 'latin1');
}

const hOf = (message: string) => /\bh=([^;]*);/.exec(message.replace(/\r\n[ \t]+/g, ' '))?.[1]?.split(':').map((h) => h.trim().toLowerCase()) ?? [];

for (const type of ['rsa', 'ed25519'] as const) {
  t.test(`${type}: the signature verifies, and an added From, Reply-To or Subject breaks it for both verifiers`, async (t) => {
    const message = await signedAtUpstream(type);
    t.match(await verifyWithMailauth(Buffer.from(message, 'latin1'), records), [{ result: 'pass', domain: 'acme.test' }], 'mailauth: pass as received');
    if (dkimpy) t.ok(verifyWithDkimpy(Buffer.from(message, 'latin1'), records, dir), 'dkimpy: pass as received');

    const h = hOf(message);
    t.equal(h.filter((n) => n === 'from').length, 2, 'h= lists From twice for a message with one From');
    for (const name of OVERSIGNED_HEADERS) t.ok(h.includes(name.toLowerCase()), `h= names ${name}, present or not`);

    for (const added of ['From: Security Team <ceo@acme.test>', 'Reply-To: attacker@evil.example', 'Subject: Urgent: confirm your password']) {
      const tampered = withHeaderAbove(message, added);
      t.match(await verifyWithMailauth(tampered, records), [{ result: 'fail' }], `mailauth: fails with "${added}" added`);
      if (dkimpy) t.notOk(verifyWithDkimpy(tampered, records, dir), `dkimpy: fails with "${added}" added`);
    }
    if (!dkimpy) t.comment('python3-dkim is not installed (.ci/run installs it): dkimpy checks skipped');
  });
}

t.test('what over-signing prevents: without it, the same added From leaves the signature valid', async (t) => {
  const message = 'From: Acme <billing@acme.test>\r\nTo: customer@example.com\r\nSubject: Your invoice\r\n\r\nPay here.\r\n';
  const { signatures } = await dkimSign(message, { canonicalization: 'relaxed/relaxed', signatureData: [{ signingDomain: 'acme.test', selector: 'ed', privateKey: keys.ed25519.privateKeyPem }] } as Parameters<typeof dkimSign>[1]);
  const tampered = withHeaderAbove(`${signatures}${message}`, 'From: Security Team <ceo@acme.test>');
  t.match(await verifyWithMailauth(tampered, records), [{ result: 'pass' }], 'a plain signature still passes: the reason for the patch');
});

t.test('a message without a From is never signed with a From-less h= (dkim.onFailure applies)', async (t) => {
  const relay = await startTestRelay(
    `smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\ndkim: { selector: ed, privateKey: "\${KEY}", onFailure: reject }\ntenants: [{ id: acme, match: { domains: [acme.test] } }]\n`,
    { KEY: keys.ed25519.privateKeyPem },
  );
  t.teardown(() => relay.close());
  const reply = await sendThrough(relay.port, { from: 'billing@acme.test', to: 'c@example.com', raw: 'To: c@example.com\r\nSubject: no author\r\n\r\nhi\r\n' }).catch((e: { response?: string }) => e.response);
  t.match(reply, /^554 5\.7\.5 /);
});
