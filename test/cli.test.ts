// The `tenant-relay` command as an admin runs it. serve runs as a real child process (the `npm start`
// config, signals); every other command runs in-process through the same dispatcher, with one real
// process to show the installed command works the same way.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { verifyPassword } from '../relay/inbound/passwords.js';
import { childEnv, cliArgv, listeningPort, runCli, spawnCli } from './helpers/cli.js';
import { sendThrough } from './helpers/relay.js';
import { openDataSession } from './helpers/smtp-client.js';

const DEFAULT_CONFIG = path.resolve('config/default.yaml');

function tmpdir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('serve runs the npm start config: mail for two tenants lands in their maildirs; SIGTERM exits 0', async (t) => {
  const dir = tmpdir();
  // The development config as shipped, on a free port instead of 2525.
  const config = path.join(dir, 'relay.yaml');
  fs.writeFileSync(config, `${fs.readFileSync(DEFAULT_CONFIG, 'utf8').replace('port: 2525', 'port: 0')}\nops: { port: 0 }\n`);
  const { child, done } = spawnCli(['serve', '--config', config], { cwd: dir });
  const port = await listeningPort(child);

  await sendThrough(port, { from: 'billing@acme.test', to: 'customer@example.com' });
  await sendThrough(port, { from: 'alerts@globex.test', to: 'customer@example.com', auth: { user: 'globex-app', pass: 'dev-password' } });
  const files = (name: string) => {
    const folder = path.join(dir, 'var', 'mail', name, 'new');
    return fs.existsSync(folder) ? fs.readdirSync(folder) : [];
  };
  // The development config queues: each message is on disk before the 250, delivered right after.
  for (let i = 0; i < 100 && files('acme').length + files('globex').length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(files('acme').length, 1, 'acme got one');
  t.equal(files('globex').length, 1, 'globex got one (by AUTH user)');
  const [acmeFile = ''] = files('acme');
  const stored = fs.readFileSync(path.join(dir, 'var', 'mail', 'acme', 'new', acmeFile), 'utf8');
  t.match(stored, /^Return-Path: <billing@acme\.test>\r\n/);
  t.match(stored, /\r\nSubject: test\r\n/);

  child.kill('SIGTERM');
  const result = await done;
  t.equal(result.code, 0);
  t.notMatch(result.stderr, /dev-password/);
});

t.test('serve: a second SIGTERM exits at once, even while a session holds the drain open', async (t) => {
  const dir = tmpdir();
  const config = path.join(dir, 'relay.yaml');
  fs.writeFileSync(config, `${fs.readFileSync(DEFAULT_CONFIG, 'utf8').replace('port: 2525', 'port: 0')}\nops: { port: 0, shutdownGraceSeconds: 60 }\n`);
  const { child, done } = spawnCli(['serve', '--config', config], { cwd: dir });
  const port = await listeningPort(child);
  const { session, dataReply } = await openDataSession(port, 'app@acme.test', 'x@example.com');
  t.teardown(() => session.close());
  t.match(dataReply, /^354 /);
  const stopping = new Promise<void>((resolve) => child.stderr?.on('data', (d: Buffer) => String(d).includes('"event":"stopping"') && resolve()));
  child.kill('SIGTERM');
  await stopping;
  const started = Date.now();
  child.kill('SIGTERM');
  const result = await done;
  t.equal(result.code, 1, 'the forced exit says so');
  t.ok(Date.now() - started < 3000, 'promptly, not after the 60 s grace period');
});

t.test("serve: Node's own warnings are JSON log lines like the rest of stderr", async (t) => {
  const dir = tmpdir();
  const config = path.join(dir, 'relay.yaml');
  fs.writeFileSync(config, `${fs.readFileSync(DEFAULT_CONFIG, 'utf8').replace('port: 2525', 'port: 0')}\nops: { port: 0 }\n`);
  // A deprecation a dependency might raise, once the relay is up: on a signal the test sends after the
  // "listening" line (a timer could fire before `serve` takes over the warnings on a slow start, and the
  // warning would then be Node's raw line the test waits past).
  const raise = `process.on('SIGUSR2', () => process.emitWarning('a dependency used something old', 'DeprecationWarning', 'DEP0999'));`;
  const { child, done } = spawnCli(['serve', '--config', config], { cwd: dir, nodeFlags: [`--import=data:text/javascript,${encodeURIComponent(raise)}`] });
  let seen = '';
  const warned = new Promise<void>((resolve) => {
    child.stderr?.on('data', (d: Buffer) => {
      seen += d;
      if (seen.includes('"event":"node-warning"')) resolve();
    });
    child.once('close', () => resolve()); // the assertions below then say what was missing
  });
  await listeningPort(child);
  child.kill('SIGUSR2');
  await warned;
  child.kill('SIGTERM');
  const result = await done;
  const lines = result.stderr.trim().split('\n');
  t.ok(lines.every((l) => l.startsWith('{')), 'no raw "(node:PID)" line');
  const warning = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'node-warning');
  t.match(warning, { level: 40, name: 'DeprecationWarning', code: 'DEP0999', msg: 'a dependency used something old' });
});

t.test('check as a real process prints the routing table and exits 0', async (t) => {
  const r = await spawnCli(['check', '--config', DEFAULT_CONFIG]).done;
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /ok, 2 tenant\(s\)\n/);
});

t.test('check prints the routing table of a valid config', async (t) => {
  const r = await runCli(['check', '--config', DEFAULT_CONFIG]);
  t.equal(r.code, 0);
  t.match(r.stdout, /ok, 2 tenant\(s\)/);
  t.match(r.stdout, /acme\s+acme\.test \*\.acme\.test\s+maildir \S+\s+-\s+none\s+queue\s+off \(no DKIM key configured\)/);
  t.match(r.stdout, /globex\s+auth:globex-app alerts@globex\.test/);
});

t.test('check exits 1 with file:line:column key errors on a bad config', async (t) => {
  const file = path.join(tmpdir(), 'bad.yaml');
  fs.writeFileSync(file, 'smarthost:\n  host: a.test\n  tls: none\n  port: 99999\n');
  const r = await runCli(['check', '--config', file]);
  t.equal(r.code, 1);
  t.equal(r.stderr.trim(), `${file}:4:3: smarthost.port: must be between 1 and 65535`);
});

t.test('explain prints the decision the server would make', async (t) => {
  const r = await runCli(['explain', '--config', DEFAULT_CONFIG, '--from', 'news@eu.acme.test']);
  t.equal(r.code, 0);
  t.match(r.stdout, /tenant:\s+acme\nupstream:\s+acme \(maildir .*\)\n/);
  t.match(r.stdout, /\nrewrites: From: "Acme Notifications" <notifications@acme\.test>; Reply-To: support@acme\.test\n/);
  t.match(r.stdout, /\nmode: {5}queue \(on disk before 250, delivered with retries\)\n/);
  t.match(r.stdout, /\ndkim:\s+off: no DKIM key configured\n/);
  t.match(r.stdout, /\nreason:\s+sender domain \*\.acme\.test is tenant acme/);
  const refused = await runCli(['explain', '--config', DEFAULT_CONFIG, '--from', 'x@acme.test', '--auth', 'globex-app']);
  t.equal(refused.code, 1);
  t.match(refused.stdout, /^refused: 553 5\.7\.1 /);
});

t.test('explain shows the delivery mode and the smarthost fallback, as decide() returns them', async (t) => {
  const file = path.join(tmpdir(), 'relay.yaml');
  fs.writeFileSync(
    file,
    `smarthost: { host: smarthost.test, tls: starttls }
tenants:
  - { id: acme, match: { domains: [acme.test] }, upstream: { host: smtp.acme.test, tls: implicit }, delivery: { fallbackToSmarthostAfterMinutes: 30 } }
  - { id: live, match: { domains: [live.test] }, delivery: { mode: passthrough } }
`,
  );
  const acme = await runCli(['explain', '--config', file, '--from', 'a@acme.test']);
  t.match(acme.stdout, /\nupstream: acme \(smtp\.acme\.test:465 tls=implicit auth=none\)\nmode: {5}queue .*\nfallback: smarthost \(smarthost\.test:587 tls=starttls auth=none\) after 30 minute\(s\) of temporary failures\n/);
  t.match(acme.stdout, /\nfailure: {2}a temporary failure \(4xx, no answer\) is retried for 120 h \(delivery\.retry\.maxLifetimeHours\), through the fallback once it applies, then bounced; a permanent one \(5xx\) is bounced at once; a bounce is a DSN to the envelope sender\n/);
  const live = await runCli(['explain', '--config', file, '--from', 'a@live.test']);
  t.match(live.stdout, /\nmode: {5}passthrough \(forwarded while the client waits\)\n/);
  t.match(live.stdout, /\nfailure: {2}the upstream's refusal is the client's answer/);
  t.notMatch(live.stdout, /fallback:/);
  const other = await runCli(['explain', '--config', file, '--from', 'a@other.test']);
  t.match(other.stdout, /\nfailure: {2}a temporary failure .* is retried for 120 h .*, then bounced; .*; no fallback upstream\n/, 'no fallback: said so');
});

t.test('explain --header-from shows the configured route header too', async (t) => {
  const file = path.join(tmpdir(), 'route-header.yaml');
  fs.writeFileSync(file, 'smarthost: { host: smarthost.test, tls: starttls }\nmessage: { traceHeader: X-Relay-Route }\ntenants: [{ id: acme, match: { domains: [acme.test] } }]\n');
  const r = await runCli(['explain', '--config', file, '--from', 'app@acme.test', '--header-from', 'app@acme.test']);
  t.match(r.stdout, /\nheader: {3}X-Relay-Route: tenant=acme; upstream=smarthost\n/);
});

t.test('explain --header-from shows the headers the message would leave with', async (t) => {
  const r = await runCli(['explain', '--config', DEFAULT_CONFIG, '--from', 'app@acme.test', '--header-from', 'Workflow <app@acme.test>', '--rcpt', 'x@example.com']);
  t.equal(r.code, 0);
  t.match(r.stdout, /\nheader: {3}From: Acme Notifications <notifications@acme\.test>\n/);
  t.match(r.stdout, /\nheader: {3}Reply-To: support@acme\.test\n/);
});

/** A loopback port another server (the test's) listens on, closed at the end of the test. */
async function takenPort(t: Test): Promise<number> {
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.teardown(() => holder.close());
  return (holder.address() as net.AddressInfo).port;
}

t.test('serve: a port another process holds is one log line naming listen[0], and exit 3', async (t) => {
  const dir = tmpdir();
  const taken = await takenPort(t);
  const config = path.join(dir, 'relay.yaml');
  fs.writeFileSync(config, `listen: [{ host: 127.0.0.1, port: ${taken} }]\nops: { port: 0 }\nsmarthost: { host: 127.0.0.1, tls: none }\ndelivery: { spool: { path: ${dir}/spool } }\n`);
  const r = await spawnCli(['serve', '--config', config], { cwd: dir }).done;
  t.equal(r.code, 3);
  const lines = r.stderr.trim().split('\n');
  t.ok(lines.every((l) => l.startsWith('{')), 'only log lines: no stack trace');
  const failed = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'start-failed');
  t.equal(failed.length, 1);
  t.match(failed[0], { level: 60, key: 'listen[0]', msg: `cannot listen on 127.0.0.1:${taken} (listen[0]): another process listens there already` });
});

t.test('serve: an ops port in use names ops.port; a spool path it cannot make names delivery.spool.path', async (t) => {
  const dir = tmpdir();
  const taken = await takenPort(t);
  const config = path.join(dir, 'relay.yaml');
  fs.writeFileSync(config, `listen: [{ host: 127.0.0.1, port: 0 }]\nops: { host: 127.0.0.1, port: ${taken} }\nsmarthost: { host: 127.0.0.1, tls: none }\ndelivery: { spool: { path: ${dir}/spool } }\n`);
  const ops = await spawnCli(['serve', '--config', config], { cwd: dir }).done;
  t.equal(ops.code, 3);
  t.match(ops.stderr, /"event":"start-failed","key":"ops\.port","msg":"cannot listen on 127\.0\.0\.1:\d+ \(ops\.port\): another process listens there already"/);
  fs.writeFileSync(path.join(dir, 'a-file'), '');
  fs.writeFileSync(config, `listen: [{ host: 127.0.0.1, port: 0 }]\nops: { port: 0 }\nsmarthost: { host: 127.0.0.1, tls: none }\ndelivery: { spool: { path: ${dir}/a-file/spool } }\n`);
  const spool = await spawnCli(['serve', '--config', config], { cwd: dir }).done;
  t.equal(spool.code, 3);
  t.match(spool.stderr, /"event":"start-failed","key":"delivery\.spool\.path","msg":"cannot use the spool folder .*a-file\/spool \(delivery\.spool\.path\): a part of the path is a file, not a folder"/);
});

t.test('bin/tenant-relay runs the commands on the Node the project brings, whatever Node is first on PATH', async (t) => {
  const launcher = path.resolve('bin/tenant-relay');
  t.ok(fs.existsSync('dist/relay/cli.js'), 'dist is built (npm ci)');
  // The machine's own directories only: its node (if any) may be older than the project supports.
  const r = spawnSync(launcher, ['check', '--config', DEFAULT_CONFIG], { env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /default\.yaml: ok, 2 tenant\(s\)/);
  // Where the project brought none (the image: optional dependencies left out), the node on PATH.
  const root = tmpdir();
  fs.mkdirSync(path.join(root, 'bin'));
  fs.copyFileSync(launcher, path.join(root, 'bin', 'tenant-relay'));
  fs.chmodSync(path.join(root, 'bin', 'tenant-relay'), 0o755);
  fs.symlinkSync(path.resolve('dist'), path.join(root, 'dist'));
  const image = spawnSync(path.join(root, 'bin', 'tenant-relay'), ['--help'], { env: { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin` }, encoding: 'utf8' });
  t.equal(image.status, 0, image.stderr);
  t.match(image.stdout, /Exit codes: 0 ok, 1 a failed check/);
  const unbuilt = tmpdir();
  fs.mkdirSync(path.join(unbuilt, 'bin'));
  fs.copyFileSync(launcher, path.join(unbuilt, 'bin', 'tenant-relay'));
  fs.chmodSync(path.join(unbuilt, 'bin', 'tenant-relay'), 0o755);
  const none = spawnSync(path.join(unbuilt, 'bin', 'tenant-relay'), ['check'], { encoding: 'utf8' });
  t.equal(none.status, 3);
  t.match(none.stderr, /dist is not built; run npm ci/);
});

t.test('hash-password at a terminal asks twice and shows nothing of the password', async (t) => {
  const command = cliArgv(['hash-password']).map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: 'pipe', env: childEnv() });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d;
    if (/Password \(not shown\): $/.test(out) || /Again, to be sure: $/.test(out)) child.stdin.write('s3cret-typed\r');
  });
  const timer = setTimeout(() => child.kill(), 20_000);
  const code = await new Promise((r) => child.on('close', r));
  clearTimeout(timer);
  t.equal(code, 0, out);
  t.notMatch(out, /s3cret/, 'not echoed');
  const hash = /scrypt\S+/.exec(out)?.[0] ?? '';
  t.ok(await verifyPassword('s3cret-typed', hash));
});

t.test('hash-password makes a hash that verifies', async (t) => {
  const r = await runCli(['hash-password'], 's3cret\n');
  t.equal(r.code, 0);
  t.ok(await verifyPassword('s3cret', r.stdout.trim()));
  t.notOk(await verifyPassword('other', r.stdout.trim()));
});

t.test('usage errors exit 2', async (t) => {
  t.equal((await runCli(['frobnicate'])).code, 2);
  t.equal((await runCli(['explain', '--config', DEFAULT_CONFIG])).code, 2);
  t.equal((await runCli(['check', '--nope'])).code, 2);
  t.equal((await runCli(['--help'])).code, 0);
});

t.test('every command has --help', async (t) => {
  for (const command of ['serve', 'check', 'explain', 'preflight', 'send-test', 'queue', 'hash-password', 'schema']) {
    const r = await runCli([command, '--help']);
    t.equal(r.code, 0, command);
    t.match(r.stdout, new RegExp(`^Usage: tenant-relay ${command}`), command);
  }
});
