// What the relay writes holds mail and who sent it to whom: the spool, the journal, the trace and the
// webhooks' outboxes are folders 0700 and files 0600 whatever the umask the relay was started with, and a
// spool left readable by others is tightened when the relay starts (and said in the log). A real `serve`
// process started under umask 000.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { childEnv, cliArgv } from './helpers/cli.js';
import { sendThrough } from './helpers/relay.js';
import { closedPort, startUpstream } from './helpers/upstream.js';
import { startReceiver } from './helpers/webhook-receiver.js';
import { until } from './helpers/wait.js';

const SECRET = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;

function walk(root: string): { file: string; mode: number; dir: boolean }[] {
  const found: { file: string; mode: number; dir: boolean }[] = [];
  const visit = (file: string) => {
    const stat = fs.lstatSync(file);
    found.push({ file: path.relative(root, file) || '.', mode: stat.mode & 0o777, dir: stat.isDirectory() });
    if (stat.isDirectory()) for (const name of fs.readdirSync(file)) visit(path.join(file, name));
  };
  visit(root);
  return found;
}

t.test('under umask 000, every folder the relay writes is 0700 and every file 0600; a wider spool is tightened at start', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-private-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const spool = path.join(dir, 'spool');
  // Left by an earlier run under a wide umask.
  fs.mkdirSync(path.join(spool, 'failed'), { recursive: true });
  fs.writeFileSync(path.join(spool, 'failed', 'old.json'), '{}');
  fs.chmodSync(spool, 0o755);
  fs.chmodSync(path.join(spool, 'failed'), 0o777);
  fs.chmodSync(path.join(spool, 'failed', 'old.json'), 0o644);

  const upstream = await startUpstream({ rcpt: (a) => (a.startsWith('later') ? [451, '4.2.0 try later'] : undefined) });
  t.teardown(() => upstream.close());
  const receiver = await startReceiver(SECRET);
  t.teardown(() => receiver.close());
  const port = await closedPort();
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(
    file,
    `listen: [{ host: 127.0.0.1, port: ${port} }]
ops: { enabled: false }
delivery: { mode: queue, spool: { path: ${spool} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
events: { webhook: { url: "${receiver.url}", secret: "${SECRET}" } }
`,
  );
  const [program, ...args] = cliArgv(['serve', '--config', file]);
  const child = spawn('sh', ['-c', 'umask 000 && exec "$@"', 'sh', program, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
  let log = '';
  child.stderr.on('data', (d) => {
    log += d;
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  t.ok(await until(() => log.includes('"event":"listening"'), 20_000), 'listening');
  await sendThrough(port, { from: 'app@example.org', to: ['now@example.com', 'later@example.com'] });
  t.ok(await until(() => log.includes('"event":"deferred"') && receiver.events.length >= 4, 20_000), 'one recipient deferred, events sent');
  await new Promise((r) => setTimeout(r, 500)); // the trace's next write
  const entries = walk(spool);
  t.ok(entries.some((e) => e.file.endsWith('.eml')), 'a queued message file is there');
  t.ok(entries.some((e) => e.file === 'trace.db'), 'the trace is there');
  t.ok(entries.some((e) => e.file.startsWith(`events${path.sep}`) && !e.dir), 'an outbox file is there');
  t.ok(entries.some((e) => e.file.startsWith(`journal${path.sep}`) && !e.dir), 'a journal segment is there');
  const open = entries.filter((e) => (e.dir ? e.mode !== 0o700 : (e.mode & 0o077) !== 0));
  t.same(open.map((e) => `${e.file} ${e.mode.toString(8)}`), [], 'nothing readable by others');
  t.match(log, /"event":"spool-tightened","entries":3/);
});
