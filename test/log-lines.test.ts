// What an operator reads at info level, message by message: each line says what the others do not. An
// app that opens a connection per message gets two lines a message (queued, delivered), each naming the
// client; a connection that carried no message gets a line of its own; the replies that only repeat the
// line's id or upstream are not written.
import net from 'node:net';
import t, { type Test } from 'tap';
import { hashPassword } from '../relay/inbound/passwords.js';
import { queuedId, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const INFO = 30;
const hash = await hashPassword('app-pass');
const gone = new Set(['gone@example.com']);
const upstream = await startUpstream({ rcpt: (a) => (gone.has(a) ? [550, '5.1.1 no such user'] : undefined) });
t.teardown(() => upstream.close());

async function relayFor(t: Test): Promise<TestRelay> {
  const relay = await startTestRelay(`
delivery: { mode: queue, spool: { path: \${SPOOL} } }
inbound: { users: [{ username: app, passwordHash: "${hash}" }], allowUnauthenticatedFrom: [127.0.0.1/32] }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`);
  t.teardown(() => relay.close());
  return relay;
}

const atInfo = (relay: TestRelay) => relay.logs.filter((l) => (l.level as number) >= INFO);
const settled = (relay: TestRelay, id: string) => until(() => relay.logs.some((l) => l.id === id && ['delivered', 'bounced'].includes(String(l.event))), 5000);

t.test('a message on a connection of its own: two lines at info, queued and delivered, and the client in the first', async (t) => {
  const relay = await relayFor(t);
  const id = queuedId((await sendThrough(relay.port, { from: 'app@example.org', to: 'someone@example.com' })).response);
  await settled(relay, id);
  await until(() => relay.logs.some((l) => l.event === 'connection'), 2000);
  t.same(atInfo(relay).filter((l) => l.id === id || l.event === 'connection').map((l) => l.event), ['queued', 'delivered']);
  const queued = relay.logs.find((l) => l.event === 'queued');
  t.match(queued, { id, client: '127.0.0.1', from: 'app@example.org', rcpt: 1 });
  t.notOk(queued && ('reply' in queued || 'replyId' in queued || 'user' in queued), 'the 250 only repeats the id; no user when the client did not log in');
  const delivered = relay.logs.find((l) => l.event === 'delivered') as { outcomes: Record<string, unknown>[] };
  t.match(delivered.outcomes, [{ rcpt: 'someone@example.com', status: 'sent', upstreamReply: /^250 / }]);
  const sent = delivered.outcomes[0] ?? {};
  t.notOk('reply' in sent || 'replyId' in sent, 'a sent recipient\'s own reply only repeats "delivered via" the upstream');
  t.match(relay.logs.find((l) => l.event === 'connection'), { level: 20, client: '127.0.0.1', transactions: 1 }, 'the connection is described at debug');
});

t.test('a client that logged in is named by its user in the message line', async (t) => {
  const relay = await relayFor(t);
  const id = queuedId((await sendThrough(relay.port, { from: 'app@example.org', to: 'someone@example.com', auth: { user: 'app', pass: 'app-pass' } })).response);
  t.match(relay.logs.find((l) => l.event === 'queued'), { id, client: '127.0.0.1', user: 'app' });
});

t.test('a connection that carried no message has its own line at info', async (t) => {
  const relay = await relayFor(t);
  const socket = net.connect(relay.port, '127.0.0.1');
  let said = '';
  socket.on('data', (d) => {
    said += String(d);
    if (/^220 /m.test(said) && !said.includes('250')) socket.write('EHLO probe.example\r\n');
    if (/^250 /m.test(said) && !said.includes('221')) socket.write('QUIT\r\n');
  });
  await new Promise((resolve) => socket.on('close', resolve));
  await until(() => relay.logs.some((l) => l.event === 'connection'), 2000);
  t.match(relay.logs.find((l) => l.event === 'connection'), { level: INFO, client: '127.0.0.1', helo: 'probe.example', transactions: 0 });
});

t.test('a recipient that was not sent keeps the reply the relay gave it and its id', async (t) => {
  const relay = await relayFor(t);
  const id = queuedId((await sendThrough(relay.port, { from: 'app@example.org', to: ['someone@example.com', 'gone@example.com'] })).response);
  await settled(relay, id);
  const line = relay.logs.find((l) => l.id === id && (l.event === 'delivery-attempt' || l.event === 'delivered')) as { recipients: unknown; outcomes?: unknown };
  t.match(line.outcomes ?? line.recipients, [
    { rcpt: 'someone@example.com', status: 'sent' },
    { rcpt: 'gone@example.com', status: 'perm', reply: /^550 5\.1\.1 /, replyId: String, upstreamReply: /no such user/ },
  ]);
});

t.test('pass-through: one line a message at info, the message line, naming the client', async (t) => {
  const relay = await startTestRelay(`smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`);
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'app@example.org', to: 'someone@example.com' });
  await until(() => relay.logs.some((l) => l.event === 'connection'), 2000);
  t.same(atInfo(relay).map((l) => l.event).filter((e) => e !== 'listening' && e !== 'queue-loaded'), ['message']);
  const line = relay.logs.find((l) => l.event === 'message') as { client?: string; recipients: Record<string, unknown>[] };
  t.equal(line.client, '127.0.0.1');
  t.match(line.recipients, [{ rcpt: 'someone@example.com', status: 'sent', upstreamReply: /^250 / }]);
  t.notOk('reply' in (line.recipients[0] ?? {}), 'the sent recipient carries the upstream\'s reply, not ours');
});
