// The `tenant-relay` command as an admin runs it. serve runs as a real child process (the `npm start`
// config, signals); every other command runs in-process through the same dispatcher, with one real
// process to show the installed command works the same way.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { verifyPassword } from '../relay/inbound/passwords.js';
import { listeningPort, runCli, spawnCli } from './helpers/cli.js';
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
  const live = await runCli(['explain', '--config', file, '--from', 'a@live.test']);
  t.match(live.stdout, /\nmode: {5}passthrough \(forwarded while the client waits\)\n/);
  t.notMatch(live.stdout, /fallback:/);
});

t.test('explain --header-from shows the headers the message would leave with', async (t) => {
  const r = await runCli(['explain', '--config', DEFAULT_CONFIG, '--from', 'app@acme.test', '--header-from', 'Workflow <app@acme.test>', '--rcpt', 'x@example.com']);
  t.equal(r.code, 0);
  t.match(r.stdout, /\nheader: {3}From: Acme Notifications <notifications@acme\.test>\n/);
  t.match(r.stdout, /\nheader: {3}Reply-To: support@acme\.test\n/);
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
