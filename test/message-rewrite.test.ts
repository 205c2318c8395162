// The message stage as a function of bytes: only the header lines it means to change change, the body
// is byte-identical, and what it writes is well-formed (RFC 2047 names, punycode domains).
import { createHash } from 'node:crypto';
import libmime from 'libmime';
import t from 'tap';
import { parseConfig } from '../config/load.js';
import { outboundEnvelope } from '../relay/message/envelope.js';
import { type TraceInfo } from '../relay/message/trace.js';
import { transformMessage } from '../relay/message/transform.js';
import { decide } from '../relay/routing/decide.js';

const trace: TraceInfo = {
  id: 'c0ffee',
  receivedAt: new Date(Date.UTC(2026, 10, 24, 9, 5, 7)),
  byHost: 'relay.platform.test',
  clientAddress: '::ffff:127.0.0.1',
  helo: 'app.internal.test',
  clientHostname: 'localhost',
  tls: false,
  authenticated: false,
  recipients: ['customer@example.com'],
};

function configWith(identity: string, message = '') {
  return parseConfig(
    `smarthost: { host: smarthost.test, tls: none }
message: { ${message} }
tenants:
  - id: acme
    match: { domains: [acme.test] }
    identity: { ${identity} }
  - id: plain
    match: { domains: [plain.test] }
`,
    'relay.yaml',
    {},
  );
}

async function run(message: string | Buffer, identity = '', policy = '', from = 'app@acme.test', t2: Partial<TraceInfo> = {}) {
  const config = configWith(identity, policy);
  const decision = decide({ mailFrom: from }, undefined, config);
  if (decision.kind !== 'route') throw new Error('refused');
  return transformMessage(Buffer.isBuffer(message) ? message : Buffer.from(message, 'latin1'), decision, config, { ...trace, ...t2 });
}

async function rewritten(message: string | Buffer, identity = '', policy = '', from?: string) {
  const result = await run(message, identity, policy, from);
  if (result.kind !== 'ok') throw new Error(`refused: ${result.reason}`);
  return result.bytes.toString('latin1');
}

/** Header lines (with their folding) by name, in order. */
function headerLines(message: string): string[] {
  const head = message.slice(0, message.search(/\r?\n\r?\n/));
  return head.split(/\r?\n(?![ \t])/);
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const bodyOf = (m: string) => m.slice(m.search(/\r?\n\r?\n/));

const MESSAGE = [
  'From: Workflow Engine <app@acme.test>',
  'To: Customer <customer@example.com>',
  'Subject: A subject folded',
  '  over two lines',
  'Message-ID: <1@acme.test>',
  'X-Platform-Tenant: acme',
  '',
  'Body line one.',
  '.leading dot',
  '',
].join('\r\n');

t.test('From gets the tenant address and display name; every other header line and the body keep their bytes', async (t) => {
  const out = await rewritten(MESSAGE, 'from: notifications@acme.test, displayName: Acme Notifications');
  const lines = headerLines(out);
  t.equal(lines.find((l) => l.startsWith('From:')), 'From: Acme Notifications <notifications@acme.test>');
  const untouched = headerLines(MESSAGE).filter((l) => !l.startsWith('From:'));
  for (const line of untouched) t.ok(lines.includes(line), `kept: ${JSON.stringify(line)}`);
  t.equal(sha(bodyOf(out)), sha(bodyOf(MESSAGE)));
});

t.test('a display name alone keeps the original address', async (t) => {
  const out = await rewritten(MESSAGE, 'displayName: Acme');
  t.match(out, /\r\nFrom: Acme <app@acme\.test>\r\n/);
  t.notMatch(out, /Reply-To:/, 'the address did not change, so no Reply-To is added');
});

t.test('a non-ASCII display name is RFC 2047 encoded', async (t) => {
  const out = await rewritten(MESSAGE, 'from: team@acme.test, displayName: "Café Ünïcode, Inc."');
  const from = headerLines(out).find((l) => l.startsWith('From:')) ?? '';
  t.match(from, /^From: =\?UTF-8\?[QB]\?/);
  t.notMatch(from, /[^\x20-\x7e]/, 'ASCII only on the wire');
  t.equal(libmime.decodeWords(from.slice(6).replace(/\s*<.*$/, '')), 'Café Ünïcode, Inc.');
});

t.test('an IDN domain is written in punycode', async (t) => {
  const out = await rewritten(MESSAGE, 'from: info@bücher.example');
  t.match(out, /\r\nFrom: Workflow Engine <info@xn--bcher-kva\.example>\r\n/);
});

t.test('a folded From is replaced whole; other folded headers keep their folding', async (t) => {
  const folded = MESSAGE.replace('From: Workflow Engine <app@acme.test>', 'From: "A Very Long Display Name That Needs Folding"\r\n <app@acme.test>');
  const out = await rewritten(folded, 'from: n@acme.test');
  t.match(out, /\r\nFrom: A Very Long Display Name That Needs Folding <n@acme\.test>\r\n/);
  t.match(out, /\r\nSubject: A subject folded\r\n {2}over two lines\r\n/);
});

t.test('a missing From is added when the tenant names its address', async (t) => {
  const noFrom = MESSAGE.replace('From: Workflow Engine <app@acme.test>\r\n', '');
  t.match(await rewritten(noFrom, 'from: n@acme.test, displayName: Acme'), /\r\nFrom: Acme <n@acme\.test>\r\n/);
  t.notMatch(await rewritten(noFrom, 'displayName: Acme'), /From:/, 'without an address there is nothing to write');
});

t.test('several From headers are refused with 550 5.6.0', async (t) => {
  const two = MESSAGE.replace('To:', 'From: other@evil.test\r\nTo:');
  t.match(await run(two), { kind: 'refused', reply: { code: 550, enhanced: '5.6.0' } });
});

t.test('Reply-To: the tenant value is added, an existing one kept unless overrideReplyTo', async (t) => {
  t.match(await rewritten(MESSAGE, 'replyTo: support@acme.test'), /\r\nReply-To: support@acme\.test\r\n/);
  const withReplyTo = MESSAGE.replace('To:', 'Reply-To: author@acme.test\r\nTo:');
  const kept = await rewritten(withReplyTo, 'replyTo: support@acme.test');
  t.match(kept, /\r\nReply-To: author@acme\.test\r\n/);
  t.notMatch(kept, /support@acme\.test/);
  t.match(await rewritten(withReplyTo, 'replyTo: support@acme.test', 'overrideReplyTo: true'), /\r\nReply-To: support@acme\.test\r\n/);
});

t.test('when From changes and nobody set Reply-To, replies go to the original author (policy default)', async (t) => {
  t.match(await rewritten(MESSAGE, 'from: n@acme.test'), /\r\nReply-To: Workflow Engine <app@acme\.test>\r\n/);
  t.notMatch(await rewritten(MESSAGE, 'from: n@acme.test', 'replyToOriginalFrom: false'), /Reply-To:/);
});

t.test('the original From is kept in a header of your naming, when asked', async (t) => {
  t.match(await rewritten(MESSAGE, 'from: n@acme.test', 'originalFromHeader: X-Original-From'), /\r\nX-Original-From: Workflow Engine <app@acme\.test>\r\n/);
  t.notMatch(await rewritten(MESSAGE, 'from: n@acme.test'), /X-Original-From/, 'off by default');
});

t.test('platform-only headers are removed and the route trace header is added when configured', async (t) => {
  const out = await rewritten(MESSAGE, '', 'removeHeaders: [x-platform-tenant], traceHeader: X-Tenant-Relay-Route');
  t.notMatch(out, /X-Platform-Tenant/i);
  t.match(out, /\r\nX-Tenant-Relay-Route: tenant=acme; upstream=smarthost\r\n/);
  t.notMatch(await rewritten(MESSAGE), /X-Tenant-Relay-Route/, 'off by default');
});

t.test('a tenant with nothing to rewrite gets only the Received line, every other byte unchanged', async (t) => {
  const own = MESSAGE.replace('app@acme.test', 'app@plain.test');
  const out = await rewritten(own, '', '', 'app@plain.test');
  t.equal(out.slice(out.indexOf('\r\nFrom:') + 2), own);
});

t.test('the Received line has the RFC 5321 form, and client text that is not a host name is left out', async (t) => {
  const out = await rewritten(MESSAGE);
  const received = headerLines(out)[0]?.replace(/\r\n[ \t]+/g, ' ');
  t.equal(received, 'Received: from app.internal.test (localhost [127.0.0.1]) by relay.platform.test (tenant-relay) with ESMTP id c0ffee for <customer@example.com>; Tue, 24 Nov 2026 09:05:07 +0000');
  const hostile = await run(MESSAGE, '', '', 'app@acme.test', { helo: 'evil\r\nX-Injected: yes', clientHostname: 'bad name', tls: true, authenticated: true, recipients: ['a@x.test', 'b@x.test'] });
  const text = hostile.kind === 'ok' ? hostile.bytes.toString('latin1') : '';
  t.match(headerLines(text)[0]?.replace(/\r\n[ \t]+/g, ' '), /^Received: from unknown \(\[127\.0\.0\.1\]\) by relay\.platform\.test \(tenant-relay\) with ESMTPSA id c0ffee; /);
  t.notMatch(text, /X-Injected/);
  t.notMatch(headerLines(text)[0] ?? '', /for </, 'no "for" with several recipients (it would disclose Bcc)');
});

t.test('a refusal names the From address it was about cleaned and bounded: it reaches the log as it is', async (t) => {
  const long = `${'x'.repeat(5000)}\u0007@plain.test`;
  const result = await run(`From: ${long}\r\nSubject: s\r\n\r\nbody\r\n`);
  t.equal(result.kind, 'refused');
  if (result.kind !== 'refused') return;
  t.ok(result.reason.length < 400, `${result.reason.length} characters`);
  t.notMatch(result.reason, /[\u0000-\u001f]/);
});

t.test('more than 50 Received headers is a mail loop: 554 5.4.0', async (t) => {
  const hops = (n: number) => 'Received: from a by b; Tue, 24 Nov 2026 09:05:07 +0000\r\n'.repeat(n) + MESSAGE;
  t.match(await run(hops(51)), { kind: 'refused', reply: { code: 554, enhanced: '5.4.0' } });
  t.match(await run(hops(50)), { kind: 'ok' });
});

t.test('the body is byte-identical for multipart, 8-bit and LF-only messages', async (t) => {
  const multipart = Buffer.from(
    'From: a@acme.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b1"\r\n\r\n' +
      '--b1\r\nContent-Type: text/plain\r\n\r\nplain\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--b1--\r\n',
  );
  const eightBit = Buffer.concat([Buffer.from('From: a@acme.test\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'), Buffer.from('Grüße ☃\r\n', 'utf8'), Buffer.from([0xff, 0xfe, 0x0d, 0x0a])]);
  const lfOnly = Buffer.from('From: a@acme.test\nSubject: lf\n\nline one\nline two\n');
  for (const [name, message] of [['multipart', multipart], ['8-bit', eightBit], ['LF-only', lfOnly]] as const) {
    const result = await run(message, 'from: n@acme.test, displayName: Näme');
    if (result.kind !== 'ok') throw new Error('refused');
    const body = message.subarray(message.indexOf(name === 'LF-only' ? '\n\n' : '\r\n\r\n') + (name === 'LF-only' ? 2 : 4));
    t.equal(sha(result.bytes.subarray(result.bytes.length - body.length)), sha(body), `${name} body unchanged`);
    t.match(result.bytes.toString('latin1'), /\r\nFrom: =\?UTF-8\?Q\?N=C3=A4me\?= <n@acme\.test>\r\n/, `${name} From rewritten`);
  }
});

t.test('the envelope sender is rewritten only when the tenant asks, and never for the null sender', async (t) => {
  const config = configWith('from: bounces@acme.test, rewriteEnvelopeSender: true');
  const decision = decide({ mailFrom: 'app@acme.test' }, undefined, config);
  if (decision.kind !== 'route') throw new Error('refused');
  t.same(outboundEnvelope({ mailFrom: 'app@acme.test', rcptTo: ['x@example.com'] }, decision), { mailFrom: 'bounces@acme.test', rcptTo: ['x@example.com'] });
  t.same(outboundEnvelope({ mailFrom: '', rcptTo: ['x@example.com'] }, decision), { mailFrom: '', rcptTo: ['x@example.com'] });
  const plain = decide({ mailFrom: 'app@acme.test' }, undefined, configWith('from: bounces@acme.test'));
  if (plain.kind !== 'route') throw new Error('refused');
  t.equal(outboundEnvelope({ mailFrom: 'app@acme.test', rcptTo: ['x@example.com'] }, plain).mailFrom, 'app@acme.test', 'off by default');
  t.throws(() => configWith('rewriteEnvelopeSender: true'), { message: /identity\.rewriteEnvelopeSender: needs identity\.from/ });
});
