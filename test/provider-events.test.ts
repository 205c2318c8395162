// The smarthost provider's event webhooks (Mailgun's HMAC, SendGrid's ECDSA), posted to the ops listener
// with real signatures the test makes: each event is linked to the message it is about (its Message-ID
// and recipient in the trace), becomes a delivery event of it, and a bounce or complaint suppresses the
// address for the message's tenant. A forged, stale or replayed request is refused (401); an event for a
// message the relay did not send is counted and never linked.
import { createHmac, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import path from 'node:path';
import t, { type Test } from 'tap';
import { findInTraces } from '../relay/reporting/trace-read.js';
import { sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const MAILGUN_KEY = 'key-mailgun-signing-0123456789abcdef';
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const SENDGRID_PUBLIC = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');

interface Fixture {
  readonly relay: TestRelay;
  readonly upstream: Upstream;
  readonly rcpts: string[];
  post(provider: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }>;
  statusOf(messageId: string): string | null | undefined;
}

async function fixture(t: Test): Promise<Fixture> {
  const rcpts: string[] = [];
  const upstream = await startUpstream({ rcpt: (a) => void rcpts.push(a) });
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `
delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
providerEvents:
  mailgun: { signingKey: ${MAILGUN_KEY} }
  sendgrid: { publicKey: "${SENDGRID_PUBLIC}" }
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
    rcpts,
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
  const before = f.rcpts.length;
  await f.relay.relay.scheduler.runDue();
  t.same(f.rcpts.slice(before), ['kim@example.com'], 'the next message of the tenant skips the address');
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
  const before = f.rcpts.length;
  await f.relay.relay.scheduler.runDue();
  t.same(f.rcpts.slice(before), [], 'the complainant is suppressed for the tenant');
  const tampered = batch.replace('spamreport', 'delivered');
  t.equal((await f.post('sendgrid', tampered, { ...headers, 'x-twilio-email-event-webhook-signature': sign('sha256', Buffer.from(`${timestamp}x`), privateKey).toString('base64') })).status, 401, 'a signature over other bytes');
  t.equal((await f.post('sendgrid', tampered, headers)).status, 401, 'the body changed after signing');
});
