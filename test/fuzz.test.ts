// A few thousand sessions of garbage, half-commands and random bytes (bounded in count and time,
// loopback only). The relay answers or closes each one, never dies, and still delivers afterwards.
import net from 'node:net';
import t from 'tap';
import { seededRandom } from './helpers/random.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const SESSIONS = 2000;
const CONCURRENCY = 10;
const { seed, random } = seededRandom('FUZZ_SEED');
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

const upstream = await startUpstream();
const relay = await startTestRelay(`
inbound: { maxConnectionsPerIp: 50, idleTimeoutSeconds: 2, progressTimeoutSeconds: 2, dataTimeoutSeconds: 2 }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`);
t.teardown(async () => {
  await relay.close();
  await upstream.close();
});

const VERBS = ['EHLO', 'HELO', 'MAIL FROM:', 'RCPT TO:', 'DATA', 'RSET', 'NOOP', 'QUIT', 'AUTH PLAIN', 'AUTH LOGIN', 'STARTTLS', 'VRFY', 'BDAT', 'XCLIENT', 'HELP', '.'];
const PIECES = ['<>', '<a@b.test>', '<@x:y@z>', '<"q"@x>', '%', '!', '\r', '\n', '\0', '\r\n', '\r\n.\r\n', '..', ' SIZE=99999999999', ' BODY=8BITMIME', 'AAAA====', '\u00ff\u00fe', ':', '<', '>'];

function garbage(): string {
  let out = '';
  const parts = 1 + Math.floor(random() * 8);
  for (let i = 0; i < parts; i++) {
    const r = random();
    if (r < 0.4) out += `${pick(VERBS)}${pick(PIECES)}\r\n`;
    else if (r < 0.7) out += pick(PIECES);
    else out += Buffer.from(Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256))).toString('latin1');
  }
  return out;
}

function session(): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(relay.port, '127.0.0.1');
    const done = () => {
      socket.destroy();
      resolve();
    };
    socket.setTimeout(3000, done);
    socket.on('error', done);
    socket.on('close', done);
    socket.once('data', () => {
      // After the greeting: one to three writes of garbage, then leave (sometimes politely).
      const writes = 1 + Math.floor(random() * 3);
      for (let i = 0; i < writes; i++) socket.write(Buffer.from(garbage(), 'latin1'));
      if (random() < 0.5) socket.write('QUIT\r\n');
      setTimeout(done, 2 + Math.floor(random() * 8));
    });
  });
}

t.test(`${SESSIONS} garbage sessions, then a real message still goes through (seed ${seed})`, async (t) => {
  let next = 0;
  const worker = async () => {
    while (next < SESSIONS) {
      next++;
      await session();
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  t.comment(`${SESSIONS} sessions in ${Date.now() - started} ms`);
  const info = await sendThrough(relay.port, { from: 'app@example.com', to: 'user@example.com' });
  t.match(info.response, /^250 /);
  t.match(upstream.received.at(-1), { mailFrom: 'app@example.com', rcptTo: ['user@example.com'] });
  t.notOk(relay.logs.some((l) => l.event === 'data-failed'), 'no unexpected error inside the relay');
});
