// The meaning of 250: a relay process killed with SIGKILL at random points while a bounded load runs,
// restarted each time, loses nothing it acknowledged and delivers nothing truncated. The upstream also
// defers a fifth of the recipients, so retries and restarts overlap.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { childEnv, cliArgv } from './helpers/cli.js';
import { seededRandom } from './helpers/random.js';
import { sendThrough } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

const KILLS = 3;
const MAX_MESSAGES = 120;
const WORKERS = 4;
const { seed, random } = seededRandom('CRASH_SEED');

const upstream = await startUpstream({ rcpt: () => (random() < 0.2 ? [451, '4.3.0 try again'] : undefined) });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-crash-'));
const configFile = path.join(dir, 'relay.yaml');
fs.writeFileSync(
  configFile,
  `listen: [{ host: 127.0.0.1, port: 0 }]
ops: { port: 0 }
delivery: { mode: queue, spool: { path: ${dir}/spool }, retry: { minSeconds: 0.5, maxSeconds: 1, jitter: 0.1 }, scanSeconds: 1 }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`,
);
t.teardown(async () => {
  await upstream.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

// Every fourth message is over 64 KB: held in memory as its header block and body, journaled as parts.
const bodyOf = (n: number) => `message ${n}\r\n${createHash('sha256').update(String(n)).digest('hex').repeat(n % 4 === 0 ? 1600 : 40)}\r\n`;
const rawOf = (n: number) => `From: <load@example.com>\r\nTo: <sink@example.com>\r\nSubject: m-${n}\r\n\r\n${bodyOf(n)}`;

function startRelayProcess(): Promise<{ child: ChildProcess; port: number }> {
  const [node, ...args] = cliArgv(['serve', '--config', configFile]);
  const child = spawn(node, args, { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
  return new Promise((resolve, reject) => {
    let seen = '';
    child.stderr?.on('data', (d) => {
      seen += d;
      const m = /"event":"listening","addresses":\[\{"host":"127\.0\.0\.1","port":(\d+)/.exec(seen);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once('exit', () => reject(new Error(`relay exited before listening: ${seen.slice(-500)}`)));
  });
}

t.test(`SIGKILL ${KILLS} times under load: every 250'd message arrives whole (seed ${seed})`, async (t) => {
  const acked = new Set<number>();
  let next = 0;
  let current = await startRelayProcess();
  let stopped = false;

  const deadline = Date.now() + 60_000;
  const worker = async () => {
    while (!stopped && next < MAX_MESSAGES && Date.now() < deadline) {
      const n = next++;
      // Like an app: a message that did not get 250 is sent again, until it does (or time is up).
      while (!stopped && Date.now() < deadline) {
        try {
          const info = await sendThrough(current.port, { from: 'load@example.com', to: 'sink@example.com', raw: rawOf(n) });
          if (/^250 /.test(info.response)) {
            acked.add(n);
            break;
          }
        } catch {
          // Refused or cut by the kill: not acknowledged, so not ours to keep. Wait for the restart.
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const load = Promise.all(Array.from({ length: WORKERS }, worker));

  for (let k = 0; k < KILLS; k++) {
    await new Promise((r) => setTimeout(r, 300 + random() * 700));
    const exited = new Promise((r) => current.child.once('exit', r));
    current.child.kill('SIGKILL');
    await exited;
    current = await startRelayProcess();
  }
  await load;
  stopped = true;
  t.equal(acked.size, MAX_MESSAGES, `${acked.size} of ${MAX_MESSAGES} messages acknowledged`);

  const deliveredBodies = () => {
    const seen = new Map<number, string[]>();
    for (const m of upstream.received) {
      const text = m.raw.toString('latin1');
      const n = Number(/\r\nSubject: m-(\d+)\r\n/.exec(text)?.[1] ?? -1);
      seen.set(n, [...(seen.get(n) ?? []), text.slice(text.indexOf('\r\n\r\n') + 4)]);
    }
    return seen;
  };
  for (let i = 0; i < 200 && [...acked].some((n) => !deliveredBodies().has(n)); i++) await new Promise((r) => setTimeout(r, 100));

  const delivered = deliveredBodies();
  const missing = [...acked].filter((n) => !delivered.has(n));
  t.same(missing, [], 'every acknowledged message was delivered');
  const damaged = [...delivered].filter(([n, bodies]) => bodies.some((b) => b !== bodyOf(n)));
  t.same(damaged.map(([n]) => n), [], 'none delivered truncated or altered');
  const duplicates = [...delivered.values()].filter((b) => b.length > 1).length;
  t.comment(`delivered ${delivered.size} distinct, ${duplicates} more than once (allowed: at least once)`);

  const exited = new Promise((r) => current.child.once('exit', r));
  current.child.kill('SIGTERM');
  await exited;
});
