// The smarthost provider's event webhooks (Mailgun's HMAC, SendGrid's ECDSA, SES through SNS with its
// signing certificate fetched from an allowed https host, Postmark's basic auth and the relay's own
// signed link in its metadata), posted to the ops listener
// with real signatures the test makes: each event is linked to the message it is about (its Message-ID
// and recipient in the trace), becomes a delivery event of it, and a bounce or complaint suppresses the
// address for the message's tenant. A forged, stale or replayed request is refused (401); an event for a
// message the relay did not send is counted and never linked.
import { createHmac, createSign, generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { guardFor, SeenTokens } from '../relay/reporting/provider-events/event.js';
import { snsStringToSign } from '../relay/reporting/provider-events/ses.js';
import { findInTraces } from '../relay/reporting/trace-read.js';
import { makeTestCerts } from './helpers/certs.js';
import { sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const MAILGUN_KEY = 'key-mailgun-signing-0123456789abcdef';
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const SENDGRID_PUBLIC = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');

interface Fixture {
  readonly relay: TestRelay;
  readonly upstream: Upstream;
  post(provider: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }>;
  statusOf(messageId: string): string | null | undefined;
}

async function fixture(t: Test, extra = ''): Promise<Fixture> {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `
delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
providerEvents:
  mailgun: { signingKey: ${MAILGUN_KEY} }
  sendgrid: { publicKey: "${SENDGRID_PUBLIC}" }
${extra}
tenants:
  - { id: acme, match: { domains: [acme.test] } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  for (const [id, to] of [
    ['m1', 'pat@example.com'],
    ['m2', 'kim@example.com'],
    ['m3', 'lee@example.com'],
  ]) {
    await sendThrough(relay.port, { from: 'app@acme.test', to: to ?? '', raw: `From: <app@acme.test>\r\nTo: ${to}\r\nMessage-ID: <${id}@acme.test>\r\nSubject: hi\r\n\r\nHello.\r\n` });
  }
  await relay.relay.scheduler.runDue();
  const traceFile = path.join(relay.spoolDir, 'trace.db');
  const statusOf = (messageId: string) => findInTraces([traceFile], { messageId })[0]?.status;
  await until(() => statusOf('<m3@acme.test>') === 'delivered', 3000);
  return {
    relay,
    upstream,
    statusOf,
    post: async (provider, body, headers = {}) => {
      const raw = typeof body === 'string' ? body : JSON.stringify(body);
      const res = await fetch(`http://127.0.0.1:${relay.relay.opsPort}/provider-events/${provider}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: raw });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
  };
}

function mailgunEvent(eventData: Record<string, unknown>, o: { key?: string; timestamp?: number; token?: string } = {}) {
  const timestamp = String(Math.floor((o.timestamp ?? Date.now()) / 1000));
  const token = o.token ?? randomBytes(25).toString('hex');
  return { signature: { timestamp, token, signature: createHmac('sha256', o.key ?? MAILGUN_KEY).update(timestamp + token).digest('hex') }, 'event-data': eventData };
}

const bounce = (recipient: string, messageId: string) => ({ event: 'failed', severity: 'permanent', recipient, timestamp: Date.now() / 1000, message: { headers: { 'message-id': messageId } }, 'delivery-status': { code: 550, message: '5.1.1 The email account that you tried to reach does not exist' } });

t.test('Mailgun: a signed permanent failure is linked to its message, told as bounced, and suppresses the address for its tenant', async (t) => {
  const f = await fixture(t);
  const answer = await f.post('mailgun', mailgunEvent(bounce('pat@example.com', 'm1@acme.test')));
  t.same(answer, { status: 200, body: { matched: 1, unmatched: 0, ignored: 0 } });
  t.ok(await until(() => f.statusOf('<m1@acme.test>') === 'bounced', 3000), 'the message is bounced in the trace (and a bounced delivery event went out)');
  await sendThrough(f.relay.port, { from: 'app@acme.test', to: ['pat@example.com', 'kim@example.com'] });
  const before = f.upstream.rcpts.length;
  await f.relay.relay.scheduler.runDue();
  t.same(f.upstream.rcpts.slice(before), ['kim@example.com'], 'the next message of the tenant skips the address');
  t.same((await f.post('mailgun', mailgunEvent({ event: 'opened', recipient: 'kim@example.com' }))).body, { matched: 0, unmatched: 0, ignored: 1 }, 'kinds the relay does not act on: taken, counted');
});

t.test("Mailgun: a forged, stale or replayed request is refused; an event for a message the relay did not send is never linked", async (t) => {
  const f = await fixture(t);
  t.equal((await f.post('mailgun', mailgunEvent(bounce('kim@example.com', 'm2@acme.test'), { key: 'someone-elses-key-0123456789' }))).status, 401, 'another key');
  t.equal((await f.post('mailgun', mailgunEvent(bounce('kim@example.com', 'm2@acme.test'), { timestamp: Date.now() - 3_600_000 }))).status, 401, 'an hour old');
  const once = mailgunEvent(bounce('lee@example.com', 'm3@acme.test'));
  t.equal((await f.post('mailgun', once)).status, 200);
  t.equal((await f.post('mailgun', once)).status, 401, 'the same request again');
  t.equal((await f.post('mailgun', { 'event-data': bounce('kim@example.com', 'm2@acme.test') })).status, 401, 'no signature');
  t.equal(f.statusOf('<m2@acme.test>'), 'delivered', 'nothing a refused request said was taken');
  t.equal((await f.post('mailgun', mailgunEvent(bounce('kim@example.com', 'not-ours@elsewhere.test')))).status, 406, 'no such message: 406 (Mailgun does not retry it)');
  t.equal((await f.post('mailgun', mailgunEvent(bounce('someone@example.com', 'm2@acme.test')))).status, 406, 'a recipient the message did not have: not linked to it');
  const metrics = await (await fetch(`http://127.0.0.1:${f.relay.relay.opsPort}/metrics`)).text();
  t.match(metrics, /tenant_relay_provider_events_total\{provider="mailgun",result="refused"\} 4/);
  t.match(metrics, /tenant_relay_provider_events_total\{provider="mailgun",result="unmatched"\} 2/);
});

t.test('SendGrid: a signed batch; the complaint and the delivery are linked, the unknown message counted; a bad signature refused', async (t) => {
  const f = await fixture(t);
  const batch = JSON.stringify([
    { email: 'kim@example.com', event: 'spamreport', 'smtp-id': '<m2@acme.test>', timestamp: Math.floor(Date.now() / 1000) },
    { email: 'lee@example.com', event: 'delivered', 'smtp-id': '<m3@acme.test>', response: '250 OK', timestamp: Math.floor(Date.now() / 1000) },
    { email: 'x@example.com', event: 'bounce', type: 'bounce', status: '5.1.1', 'smtp-id': '<other@elsewhere.test>' },
    { email: 'kim@example.com', event: 'open', 'smtp-id': '<m2@acme.test>' },
  ]);
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = sign('sha256', Buffer.from(timestamp + batch), privateKey).toString('base64');
  const headers = { 'x-twilio-email-event-webhook-signature': signature, 'x-twilio-email-event-webhook-timestamp': timestamp };
  t.same(await f.post('sendgrid', batch, headers), { status: 200, body: { matched: 2, unmatched: 1, ignored: 1 } });
  t.ok(await until(() => f.statusOf('<m2@acme.test>') === 'complained', 3000), 'the complaint is in the trace');
  await sendThrough(f.relay.port, { from: 'app@acme.test', to: 'kim@example.com' });
  const before = f.upstream.rcpts.length;
  await f.relay.relay.scheduler.runDue();
  t.same(f.upstream.rcpts.slice(before), [], 'the complainant is suppressed for the tenant');
  const tampered = batch.replace('spamreport', 'delivered');
  t.equal((await f.post('sendgrid', tampered, { ...headers, 'x-twilio-email-event-webhook-signature': sign('sha256', Buffer.from(`${timestamp}x`), privateKey).toString('base64') })).status, 401, 'a signature over other bytes');
  t.equal((await f.post('sendgrid', tampered, headers)).status, 401, 'the body changed after signing');
});

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:ses-events';

/** An https server (test CA) playing SNS's certificate host: it serves the signing certificate, and counts. */
const POSTMARK = { username: 'postmark-hook', password: 'webhook-password-0123456789', signingKey: 'postmark-link-signing-key-0123456789abcdef' };
const POSTMARK_CONFIG = `  postmark: { username: ${POSTMARK.username}, password: ${POSTMARK.password}, signingKey: ${POSTMARK.signingKey}, smtpHosts: [127.0.0.1] }`;
const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

/** The metadata Postmark would echo for a message it was sent: from the header the relay added. */
function metadataOf(upstream: Upstream, to: string): Record<string, string> {
  const raw = upstream.received.find((r) => r.rcptTo.includes(to))?.raw.toString() ?? '';
  const value = /^X-PM-Metadata-tenant-relay: (\S+)\r$/m.exec(raw)?.[1];
  return value ? { 'tenant-relay': value } : {};
}

const postmarkBounce = (email: string, metadata: Record<string, string>, o: { id?: number; type?: string } = {}) => ({
  RecordType: 'Bounce',
  ID: o.id ?? Math.floor(Math.random() * 1e9),
  Type: o.type ?? 'HardBounce',
  TypeCode: 1,
  MessageID: randomUUID(),
  Description: 'The server was unable to deliver your message (ex: unknown user, mailbox not found).',
  Details: "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
  Email: email,
  BouncedAt: new Date().toISOString(),
  Metadata: metadata,
});

t.test('Postmark: with its basic auth, an event whose metadata the relay signed is linked; other credentials are refused, and no metadata or a forged one links nothing', async (t) => {
  const f = await fixture(t, POSTMARK_CONFIG);
  const m1 = metadataOf(f.upstream, 'pat@example.com');
  t.match(m1['tenant-relay'], /^[a-z0-9]+-[A-Za-z0-9_-]{16}$/, 'mail to the Postmark host carries the signed link');
  const auth = basic(POSTMARK.username, POSTMARK.password);

  t.same(await f.post('postmark', postmarkBounce('pat@example.com', m1), auth), { status: 200, body: { matched: 1, unmatched: 0, ignored: 0 } });
  t.ok(await until(() => f.statusOf('<m1@acme.test>') === 'bounced', 3000), 'bounced in the trace');
  await sendThrough(f.relay.port, { from: 'app@acme.test', to: ['pat@example.com', 'kim@example.com'] });
  const before = f.upstream.rcpts.length;
  await f.relay.relay.scheduler.runDue();
  t.same(f.upstream.rcpts.slice(before), ['kim@example.com'], 'the address is suppressed for the tenant');

  const m2 = metadataOf(f.upstream, 'kim@example.com');
  t.equal((await f.post('postmark', postmarkBounce('kim@example.com', m2), basic(POSTMARK.username, 'guessed-password-0123456789'))).status, 401, 'a wrong password');
  t.equal((await f.post('postmark', postmarkBounce('kim@example.com', m2))).status, 401, 'no credentials');
  const [queueId] = (m2['tenant-relay'] ?? '').split('-');
  const forged = { 'tenant-relay': `${queueId}-AAAAAAAAAAAAAAAA` };
  t.same((await f.post('postmark', postmarkBounce('kim@example.com', forged), auth)).body, { matched: 0, unmatched: 1, ignored: 0 }, "a queue id with a mac the relay did not make: not linked");
  t.same((await f.post('postmark', postmarkBounce('kim@example.com', {}), auth)).body, { matched: 0, unmatched: 1, ignored: 0 }, 'no metadata: not linked');
  t.same((await f.post('postmark', postmarkBounce('someone@example.com', m2), auth)).body, { matched: 0, unmatched: 1, ignored: 0 }, 'a recipient the message did not have: not linked');
  t.same((await f.post('postmark', postmarkBounce('kim@example.com', m2, { type: 'SoftBounce' }), auth)).body, { matched: 0, unmatched: 0, ignored: 1 }, 'a soft bounce is not about the address');
  t.equal(f.statusOf('<m2@acme.test>'), 'delivered', 'nothing refused or unlinked was taken');

  const complaint = { RecordType: 'SpamComplaint', ID: 77, Type: 'SpamComplaint', TypeCode: 100001, Email: 'kim@example.com', BouncedAt: new Date().toISOString(), Metadata: m2 };
  t.same((await f.post('postmark', complaint, auth)).body, { matched: 1, unmatched: 0, ignored: 0 }, 'a complaint');
  t.equal((await f.post('postmark', complaint, auth)).status, 401, 'the same event again: taken once');
  const m3 = metadataOf(f.upstream, 'lee@example.com');
  t.same((await f.post('postmark', { RecordType: 'Delivery', MessageID: randomUUID(), Recipient: 'lee@example.com', DeliveredAt: new Date().toISOString(), Details: 'Test delivery webhook details', Metadata: m3 }, auth)).body, { matched: 1, unmatched: 0, ignored: 0 }, 'a delivery');
  const metrics = await (await fetch(`http://127.0.0.1:${f.relay.relay.opsPort}/metrics`)).text();
  t.match(metrics, /tenant_relay_provider_events_total\{provider="postmark",result="refused"\} 3/);
  t.match(metrics, /tenant_relay_provider_events_total\{provider="postmark",result="matched"\} 3/);
});

t.test('Postmark: only mail to its SMTP hosts carries the link header', async (t) => {
  const f = await fixture(t, POSTMARK_CONFIG.replace('smtpHosts: [127.0.0.1]', 'smtpHosts: [smtp.postmarkapp.com]'));
  t.same(metadataOf(f.upstream, 'pat@example.com'), {}, 'another upstream gets the message as it was');
});

async function signingCertificateHost(t: Test) {
  const certs = makeTestCerts();
  const fetched: string[] = [];
  const server = https.createServer({ key: certs.server.key, cert: certs.server.cert }, (req, res) => {
    fetched.push(req.url ?? '');
    res.end(certs.selfSigned.cert);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/SimpleNotificationService-test.pem`;
  return { url, fetched, caFile: certs.caFile, key: certs.selfSigned.key };
}

/** An SNS notification carrying `message`, signed with `key` (SignatureVersion 2). */
function snsNotification(message: unknown, o: { key: string; certUrl: string; topic?: string; type?: string }) {
  const m: Record<string, string> = {
    Type: o.type ?? 'Notification',
    MessageId: randomUUID(),
    TopicArn: o.topic ?? TOPIC,
    Message: JSON.stringify(message),
    Timestamp: new Date().toISOString(),
    SignatureVersion: '2',
    SigningCertURL: o.certUrl,
    ...(o.type === 'SubscriptionConfirmation' ? { SubscribeURL: 'https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x', Token: 'x' } : {}),
  };
  const signer = createSign('RSA-SHA256');
  signer.update(snsStringToSign(m));
  return { ...m, Signature: signer.sign(o.key, 'base64') };
}

const sesBounce = (recipient: string, messageId: string) => ({
  notificationType: 'Bounce',
  mail: { messageId: '0102018f-ses-id', commonHeaders: { messageId } },
  bounce: { bounceType: 'Permanent', bouncedRecipients: [{ emailAddress: recipient, status: '5.1.1', diagnosticCode: 'smtp; 550 5.1.1 user unknown' }] },
});

t.test('SES through SNS: a notification signed with the certificate from an allowed host is linked; any other is refused, and nothing else is fetched', async (t) => {
  const host = await signingCertificateHost(t);
  const f = await fixture(t, `  ses: { topicArns: ["${TOPIC}"], certificateHosts: ["127.0.0.1"], ca: ${host.caFile} }`);
  t.same(await f.post('ses', snsNotification(sesBounce('pat@example.com', '<m1@acme.test>'), { key: host.key, certUrl: host.url })), { status: 200, body: { matched: 1, unmatched: 0, ignored: 0 } });
  t.ok(await until(() => f.statusOf('<m1@acme.test>') === 'bounced', 3000));
  await sendThrough(f.relay.port, { from: 'app@acme.test', to: 'pat@example.com' });
  const before = f.upstream.rcpts.length;
  await f.relay.relay.scheduler.runDue();
  t.same(f.upstream.rcpts.slice(before), [], 'suppressed for the tenant');

  const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  t.equal((await f.post('ses', snsNotification(sesBounce('kim@example.com', '<m2@acme.test>'), { key: other, certUrl: host.url }))).status, 401, 'signed with another key');
  t.equal((await f.post('ses', snsNotification(sesBounce('kim@example.com', '<m2@acme.test>'), { key: host.key, certUrl: host.url, topic: 'arn:aws:sns:eu-west-1:123456789012:someone-else' }))).status, 401, 'a topic not listed');
  const fetchedBefore = host.fetched.length;
  t.equal((await f.post('ses', snsNotification(sesBounce('kim@example.com', '<m2@acme.test>'), { key: host.key, certUrl: 'https://127.0.0.2:1/evil.pem' }))).status, 401, 'a certificate URL on a host not allowed: not fetched');
  t.equal((await f.post('ses', snsNotification(sesBounce('kim@example.com', '<m2@acme.test>'), { key: host.key, certUrl: host.url.replace('https:', 'http:') }))).status, 401, 'not https: not fetched');
  t.equal(host.fetched.length, fetchedBefore, 'the relay fetched nothing for them');
  t.equal(f.statusOf('<m2@acme.test>'), 'delivered');
  const confirm = await f.post('ses', snsNotification({}, { key: host.key, certUrl: host.url, type: 'SubscriptionConfirmation' }));
  t.equal(confirm.status, 200);
  t.match(f.relay.logs.find((l) => l.event === 'ses-subscription-confirmation'), { subscribeUrl: /^https:\/\/sns\.eu-west-1\.amazonaws\.com\// }, 'the operator is told to confirm it; the relay does not follow it');
});

t.test('a request that could not be linked now (503: a worker did not answer) is taken when the provider sends it again, not refused as a replay', async (t) => {
  const seen = new SeenTokens();
  const first = guardFor(seen);
  t.ok(first.fresh('mailgun:abc', 0));
  first.undo();
  t.ok(guardFor(seen).fresh('mailgun:abc', 1), 'the retry is fresh');
  t.notOk(guardFor(seen).fresh('mailgun:abc', 2), 'and, taken, a replay after that');
});
