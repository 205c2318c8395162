// 8BITMIME and SMTPUTF8 (SCENARIOS 25): an 8-bit message or a UTF-8 address goes only to an upstream
// that offered the extension; anywhere else it fails for good with 5.6.3 / 5.6.7 instead of arriving
// mangled.
import t from 'tap';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const minimal = await startUpstream({ without: ['8BITMIME', 'SMTPUTF8'] });
const modern = await startUpstream();
t.teardown(() => Promise.all([minimal.close(), modern.close()]));

const relayTo = async (port: number, mode = 'passthrough') => {
  const relay = await startTestRelay(
    `delivery: { mode: ${mode}, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${port}, tls: none }\n`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  return relay;
};

const eightBit = Buffer.concat([Buffer.from('From: a@example.com\r\nSubject: accents\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'), Buffer.from('Grüße\r\n', 'utf8')]);

t.test('an 8-bit message to an upstream without 8BITMIME fails with 554 5.6.3, nothing sent', async (t) => {
  const relay = await relayTo(minimal.port);
  t.match(await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', raw: eightBit })), /^554 5\.6\.3 Upstream smarthost does not accept 8-bit content/);
  t.equal(minimal.received.length, 0);
  t.match((await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com' })).response, /^250 /, 'a 7-bit message still goes');
  t.equal(minimal.received.length, 1);
});

t.test('a UTF-8 address to an upstream without SMTPUTF8 fails with 553 5.6.7', async (t) => {
  const relay = await relayTo(minimal.port);
  // An ASCII message: only the envelope needs SMTPUTF8.
  const ascii = 'From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n';
  t.match(await replyOf(sendThrough(relay.port, { from: 'a@example.com', to: 'josé@example.com', raw: ascii })), /^553 5\.6\.7 Upstream smarthost does not accept UTF-8 addresses/);
});

t.test('an upstream that offers both gets 8-bit bodies and UTF-8 addresses, unchanged', async (t) => {
  const relay = await relayTo(modern.port);
  await sendThrough(relay.port, { from: 'a@example.com', to: 'josé@example.com', raw: eightBit });
  t.same(modern.received.at(-1)?.rcptTo, ['josé@example.com']);
  t.ok(modern.received.at(-1)?.raw.includes(Buffer.from('Grüße', 'utf8')));
});

t.test("the relay's Received line names a UTF-8 recipient in UTF-8, as the envelope has it", async (t) => {
  const relay = await relayTo(modern.port);
  await sendThrough(relay.port, { from: 'a@example.com', to: 'zoë@日本.example', raw: 'From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n' });
  const raw = modern.received.at(-1)?.raw ?? Buffer.alloc(0);
  t.ok(raw.includes(Buffer.from('for <zoë@日本.example>', 'utf8')), raw.subarray(0, 300).toString('latin1'));
});

t.test('in queue mode the same refusal is permanent: the message fails with a DSN', async (t) => {
  const relay = await relayTo(minimal.port, 'queue');
  t.match((await sendThrough(relay.port, { from: 'a@example.com', to: 'b@example.com', raw: eightBit })).response, /^250 .*queued/);
  await relay.relay.scheduler.runDue();
  t.match(relay.logs.find((l) => l.event === 'bounced'), { reply: /^554 5\.6\.3 /, dsn: true });
});
