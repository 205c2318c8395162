// The relay's SMTP client on the wire (relay/delivery/smtp-client.ts, pools.ts): what it writes to an
// upstream, and what it does when an upstream (or someone on the path) says what it should not.
// Upstreams here are bare scripted servers on loopback sockets, so every byte each side wrote is seen.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { UpstreamPools } from '../relay/delivery/pools.js';
import { sendViaSmtp } from '../relay/delivery/smtp.js';
import { refusingGoneRecipients, type ScriptedServer as Script, scriptedUpstream, startScriptedServer } from './helpers/upstream.js';

const envelope = { mailFrom: 'app@example.com', rcptTo: ['one@example.net', 'two@example.net'] };
const message = Buffer.from('Subject: hello\r\n\r\nbody\r\n');

async function setUp(t: Test, script?: Script) {
  const up = await startScriptedServer(script);
  const pools = new UpstreamPools('relay.test');
  t.teardown(async () => {
    pools.close();
    await up.close();
  });
  return { up, pools };
}

t.test('MAIL, RCPT and DATA go in one write to a server that offers PIPELINING, one at a time to one that does not', async (t) => {
  const piped = await setUp(t);
  t.equal((await sendViaSmtp(piped.pools, scriptedUpstream(piped.up.port), envelope, message)).outcomes[0]?.status, 'sent');
  t.equal(piped.up.sessions[0]?.commandChunks.find((c) => c.startsWith('MAIL')), 'MAIL FROM:<app@example.com>\r\nRCPT TO:<one@example.net>\r\nRCPT TO:<two@example.net>\r\nDATA\r\n');

  const plain = await setUp(t, { ehlo: ['8BITMIME'] });
  t.equal((await sendViaSmtp(plain.pools, scriptedUpstream(plain.up.port), envelope, message)).outcomes[1]?.status, 'sent');
  const chunks = plain.up.sessions[0]?.commandChunks ?? [];
  t.same(
    chunks.filter((c) => /^(MAIL|RCPT|DATA)/.test(c)),
    ['MAIL FROM:<app@example.com>\r\n', 'RCPT TO:<one@example.net>\r\n', 'RCPT TO:<two@example.net>\r\n', 'DATA\r\n'],
  );
  t.equal(plain.up.sessions[0]?.messages[0], 'Subject: hello\r\n\r\nbody\r\n');
});

t.test('an 8-bit message is declared BODY=8BITMIME to a server that offers it (RFC 6152); a 7-bit one is not', async (t) => {
  const { up, pools } = await setUp(t);
  await sendViaSmtp(pools, scriptedUpstream(up.port), envelope, Buffer.from('Subject: caf\xc3\xa9\r\n\r\n\xc3\xa9\r\n', 'latin1'), { eightBit: true });
  await sendViaSmtp(pools, scriptedUpstream(up.port), envelope, message, { eightBit: false });
  t.same(
    up.sessions[0]?.lines.filter((l) => l.startsWith('MAIL')),
    ['MAIL FROM:<app@example.com> BODY=8BITMIME', 'MAIL FROM:<app@example.com>'],
  );
});

t.test('more messages than connections wait for one: all delivered, over the one connection allowed', async (t) => {
  const { up, pools } = await setUp(t);
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => sendViaSmtp(pools, scriptedUpstream(up.port), { mailFrom: 'app@example.com', rcptTo: [`r${i}@example.net`] }, message)));
  t.same(
    results.map((r) => r.outcomes[0]?.status),
    Array(6).fill('sent'),
  );
  t.equal(up.sessions.length, 1);
  t.equal(up.sessions[0]?.messages.length, 6);
});

t.test('a reply injected after the 220 to STARTTLS is not taken as said under TLS: nothing is sent', async (t) => {
  const { up, pools } = await setUp(t, {
    ehlo: ['PIPELINING', 'STARTTLS'],
    // The 220 and, in the same cleartext write, a reply to the EHLO the client will send under TLS.
    onLine: (line, s) => line === 'STARTTLS' && (s.socket.write('220 2.0.0 ready\r\n250-evil.test\r\n250 AUTH PLAIN\r\n'), true),
  });
  const result = await sendViaSmtp(pools, scriptedUpstream(up.port, { tls: 'starttls' }), envelope, message);
  t.equal(result.outcomes[0]?.status, 'temp');
  t.match(result.outcomes[0]?.reply.text ?? '', /TLS/);
  t.notOk(
    up.sessions.some((s) => s.lines.some((l) => l.startsWith('MAIL'))),
    'no envelope went out',
  );
});

t.test('a server that answers what was not asked loses the connection: the next message goes on a new one, in step', async (t) => {
  const { up, pools } = await setUp(t, {
    // A second answer to the final dot, as if to a command the client never sent.
    afterMessage: (s) => setTimeout(() => s.socket.write('250 2.0.0 and again\r\n'), 20),
  });
  t.equal((await sendViaSmtp(pools, scriptedUpstream(up.port), envelope, message)).outcomes[0]?.status, 'sent');
  await new Promise((r) => setTimeout(r, 100));
  const second = await sendViaSmtp(pools, scriptedUpstream(up.port), { mailFrom: 'app@example.com', rcptTo: ['three@example.net'] }, message);
  t.equal(second.outcomes[0]?.status, 'sent');
  t.equal(up.sessions.length, 2, 'a new connection for the second message');
  t.equal(up.sessions[1]?.messages.length, 1);
});

t.test('a message file that cannot be read ends the connection: the next message is not written into the open DATA', async (t) => {
  const { up, pools } = await setUp(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-client-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const failed = await sendViaSmtp(pools, scriptedUpstream(up.port), envelope, { path: path.join(dir, 'gone.eml') });
  t.equal(failed.outcomes[0]?.status, 'temp');
  const next = await sendViaSmtp(pools, scriptedUpstream(up.port), envelope, message);
  t.equal(next.outcomes[0]?.status, 'sent');
  t.equal(up.sessions.length, 2);
  t.same(up.sessions[0]?.messages, [], 'the first DATA never ended: no message there');
  t.same(up.sessions[1]?.messages, ['Subject: hello\r\n\r\nbody\r\n']);
});

t.test('an endless reply or a line that is no reply fails the message for now, and the connection with it', async (t) => {
  const endless = await setUp(t, { onLine: (line, s) => line.startsWith('EHLO') && (s.socket.write('250-x\r\n'.repeat(500)), true) });
  const a = await sendViaSmtp(endless.pools, scriptedUpstream(endless.up.port), envelope, message);
  t.equal(a.outcomes[0]?.status, 'temp');
  const garbage = await setUp(t, { onLine: (line, s) => line.startsWith('MAIL') && (s.socket.write('hello there\r\n'), true), ehlo: ['8BITMIME'] });
  const b = await sendViaSmtp(garbage.pools, scriptedUpstream(garbage.up.port), envelope, message);
  t.equal(b.outcomes[0]?.status, 'temp');
  const ended = () => garbage.up.sessions[0]?.socket.destroyed === true || garbage.up.sessions[0]?.socket.readableEnded === true;
  for (let i = 0; i < 50 && !ended(); i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(ended(), 'the connection was ended');
});

t.test('recipients refused at RCPT leave the connection ready: RSET, and the next message goes over it', async (t) => {
  // As a real server: DATA with no recipient taken is refused.
  const { up, pools } = await setUp(t, { onLine: refusingGoneRecipients() });
  const refused = await sendViaSmtp(pools, scriptedUpstream(up.port), { mailFrom: 'app@example.com', rcptTo: ['gone@example.net'] }, message);
  t.equal(refused.outcomes[0]?.status, 'perm');
  t.equal((await sendViaSmtp(pools, scriptedUpstream(up.port), envelope, message)).outcomes[0]?.status, 'sent');
  t.equal(up.sessions.length, 1, 'one connection for both');
  t.ok(up.sessions[0]?.lines.includes('RSET'));
});

t.test('a message whose deadline passed while its connection was being opened is not sent on it afterwards', async (t) => {
  const { up, pools } = await setUp(t, { greetingDelayMs: 600 });
  const late = await sendViaSmtp(pools, scriptedUpstream(up.port, { timeoutMs: 300 }), envelope, message);
  t.equal(late.outcomes[0]?.status, 'temp');
  t.match(late.outcomes[0]?.reply.text ?? '', /time|answer/i);
  // The connection opens after the deadline: it carries nothing for the message already reported.
  await new Promise((r) => setTimeout(r, 900));
  t.equal(up.sessions.length, 1);
  t.notOk(
    up.sessions[0]?.lines.some((l) => l.startsWith('MAIL')),
    'no MAIL FROM for it',
  );
});

t.test('a server that takes DATA after refusing every recipient gets no message: the connection is closed instead', async (t) => {
  // Pipelined, the client has sent DATA before it knows no recipient was taken; a server that says 354
  // anyway must not be sent the body, and the connection cannot be brought back to a clean state.
  const { up, pools } = await setUp(t, { onLine: (line, s) => line.startsWith('RCPT') && (s.socket.write('550 5.1.1 no such user\r\n'), true) });
  const refused = await sendViaSmtp(pools, scriptedUpstream(up.port), envelope, message);
  t.same(
    refused.outcomes.map((o) => o.status),
    ['perm', 'perm'],
  );
  t.same(up.sessions[0]?.messages, []);
  await sendViaSmtp(pools, scriptedUpstream(up.port), envelope, message);
  t.equal(up.sessions.length, 2, 'the next message on a new connection');
});
