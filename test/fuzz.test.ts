// A few thousand sessions of garbage, half-commands and random bytes (bounded in count and time,
// loopback only). The relay answers or closes each one, never dies, and still delivers afterwards; and a
// relay process run as bin/tenant-relay runs it keeps its memory: the sessions leave nothing behind, and
// the heap V8 grows for them stays bounded.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { LAUNCHER_NODE_FLAGS, listeningPort, spawnCli } from './helpers/cli.js';
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

/** Sessions the relay never greeted within 3 s: a hang, which must fail the test, not pass it. */
let hung = 0;

function session(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let greeted = false;
    socket.once('data', () => {
      greeted = true;
    });
    const done = () => {
      socket.destroy();
      resolve();
    };
    socket.setTimeout(3000, () => {
      if (!greeted) hung++;
      done();
    });
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

/** SESSIONS garbage sessions at `port`, CONCURRENCY at a time; how many the relay never greeted. */
async function garbageSessions(port: number): Promise<number> {
  hung = 0;
  let next = 0;
  const worker = async () => {
    while (next < SESSIONS) {
      next++;
      await session(port);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return hung;
}


t.test(`${SESSIONS} garbage sessions, then a real message still goes through (seed ${seed})`, async (t) => {
  const started = Date.now();
  t.equal(await garbageSessions(relay.port), 0, 'every session was greeted: none hung');
  t.comment(`${SESSIONS} sessions in ${Date.now() - started} ms`);
  const info = await sendThrough(relay.port, { from: 'app@example.com', to: 'user@example.com' });
  t.match(info.response, /^250 /);
  t.match(upstream.received.at(-1), { mailFrom: 'app@example.com', rcptTo: ['user@example.com'] });
  t.notOk(relay.logs.some((l) => l.event === 'data-failed'), 'no unexpected error inside the relay');
});

/** A process's resident memory in MB (Linux: /proc/PID/status). */
const rssOf = (pid: number) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN) / 1024;

t.test(`${SESSIONS} garbage sessions raise the RSS of a relay process (run with the launcher's Node flags) by less than 30 MB, and as many again by little: no leak`, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-fuzz-rss-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'relay.yaml');
  fs.writeFileSync(
    config,
    `listen: [{ host: 127.0.0.1, port: 0 }]
ops: { port: 0 }
inbound: { maxConnectionsPerIp: 50, idleTimeoutSeconds: 2, progressTimeoutSeconds: 2, dataTimeoutSeconds: 2 }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
delivery: { mode: passthrough, spool: { path: ${dir}/spool } }
`,
  );
  t.ok(LAUNCHER_NODE_FLAGS.length > 0, `flags ${LAUNCHER_NODE_FLAGS.join(' ')}`);
  const { child, done } = spawnCli(['serve', '--config', config], { nodeFlags: LAUNCHER_NODE_FLAGS });
  t.teardown(() => child.kill('SIGKILL'));
  const port = await listeningPort(child);
  // One real message first: what the path loads once (the DKIM signer, the pools) is not counted below.
  await sendThrough(port, { from: 'app@example.com', to: 'warm@example.com' });
  await new Promise((r) => setTimeout(r, 500));
  // The least of a few readings over 2 s: V8 sizes its young generation as it goes, and one reading can
  // land before it shrinks back (4.7 to 18 MB apart over runs of the same code, more on a loaded machine).
  const settled = async () => {
    let least = Number.POSITIVE_INFINITY;
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 250));
      least = Math.min(least, rssOf(child.pid ?? 0));
    }
    return least;
  };
  const before = rssOf(child.pid ?? 0);
  t.equal(await garbageSessions(port), 0, 'every session was greeted: none hung');
  const first = await settled();
  t.comment(`relay RSS ${before.toFixed(1)} MB -> ${first.toFixed(1)} MB on ${process.version}`);
  t.ok(first - before < 30, `the first ${SESSIONS} grew it by ${(first - before).toFixed(1)} MB: within the goal (30)`);
  // A leak grows with every round; the heap's sizing is paid mostly once. The second round costs 1-2 MB
  // on a quiet machine and up to ~9 MB in a loaded CI run; a leak the size of the one this test was
  // written for (33 MB per 2,000 sessions) would cost at least half the goal again.
  t.equal(await garbageSessions(port), 0, 'every session of a second round was greeted');
  const second = await settled();
  t.comment(`second round: ${first.toFixed(1)} MB -> ${second.toFixed(1)} MB`);
  t.ok(second - first < 15, `another ${SESSIONS} grew it by ${(second - first).toFixed(1)} MB: no leak`);
  t.match((await sendThrough(port, { from: 'app@example.com', to: 'user@example.com' })).response, /^250 /);
  child.kill('SIGTERM');
  t.equal((await done).code, 0);
});
