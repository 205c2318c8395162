// The `tenant-relay` command as an admin runs it: serve (the `npm start` config), check, explain,
// hash-password. Each runs as a real child process.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { verifyPassword } from '../relay/inbound/passwords.js';
import { sendThrough } from './helpers/relay.js';
import { openDataSession } from './helpers/smtp-client.js';

const CLI = path.resolve('relay/cli.ts');
const DEFAULT_CONFIG = path.resolve('config/default.yaml');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function start(args: string[], options: { cwd?: string; input?: string } = {}): { child: ChildProcess; done: Promise<Run> } {
  // Same Node flags as this test (the TypeScript loader), so the CLI runs from source.
  const child = spawn(process.execPath, [...process.execArgv, CLI, ...args], { cwd: options.cwd ?? process.cwd(), stdio: 'pipe' });
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (d) => {
    out.stdout += d;
  });
  child.stderr?.on('data', (d) => {
    out.stderr += d;
  });
  child.stdin?.end(options.input ?? '');
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code, ...out })));
  return { child, done };
}

const run = (args: string[], input?: string) => start(args, input === undefined ? {} : { input }).done;

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
  const { child, done } = start(['serve', '--config', config], { cwd: dir });
  const port = await new Promise<number>((resolve, reject) => {
    let seen = '';
    child.stderr?.on('data', (d) => {
      seen += d;
      const m = /"event":"listening","addresses":\[\{"host":"127\.0\.0\.1","port":(\d+)/.exec(seen);
      if (m) resolve(Number(m[1]));
    });
    child.once('close', () => reject(new Error(`serve exited early: ${seen}`)));
  });

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
  const { child, done } = start(['serve', '--config', config], { cwd: dir });
  const port = await new Promise<number>((resolve) => {
    let seen = '';
    child.stderr?.on('data', (d) => {
      seen += d;
      const m = /"event":"listening","addresses":\[\{"host":"127\.0\.0\.1","port":(\d+)/.exec(seen);
      if (m) resolve(Number(m[1]));
    });
  });
  const { session, dataReply } = await openDataSession(port, 'app@acme.test', 'x@example.com');
  t.teardown(() => session.close());
  t.match(dataReply, /^354 /);
  child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  const started = Date.now();
  child.kill('SIGTERM');
  const result = await done;
  t.equal(result.code, 1, 'the forced exit says so');
  t.ok(Date.now() - started < 3000, 'promptly, not after the 60 s grace period');
});

t.test('check prints the routing table of a valid config', async (t) => {
  const r = await run(['check', '--config', DEFAULT_CONFIG]);
  t.equal(r.code, 0);
  t.match(r.stdout, /ok, 2 tenant\(s\)/);
  t.match(r.stdout, /acme\s+acme\.test \*\.acme\.test\s+maildir \S+\s+-\s+queue\s+off \(no DKIM key configured\)/);
  t.match(r.stdout, /globex\s+auth:globex-app alerts@globex\.test/);
});

t.test('check exits 1 with file:line:column key errors on a bad config', async (t) => {
  const file = path.join(tmpdir(), 'bad.yaml');
  fs.writeFileSync(file, 'smarthost:\n  host: a.test\n  tls: none\n  port: 99999\n');
  const r = await run(['check', '--config', file]);
  t.equal(r.code, 1);
  t.equal(r.stderr.trim(), `${file}:4:3: smarthost.port: must be between 1 and 65535`);
});

t.test('explain prints the decision the server would make', async (t) => {
  const r = await run(['explain', '--config', DEFAULT_CONFIG, '--from', 'news@eu.acme.test']);
  t.equal(r.code, 0);
  t.match(r.stdout, /tenant:\s+acme\nupstream:\s+acme \(maildir .*\)\n/);
  t.match(r.stdout, /\nrewrites: From: "Acme Notifications" <notifications@acme\.test>; Reply-To: support@acme\.test\n/);
  t.match(r.stdout, /\ndkim:\s+off: no DKIM key configured\n/);
  t.match(r.stdout, /\nreason:\s+sender domain \*\.acme\.test is tenant acme/);
  const refused = await run(['explain', '--config', DEFAULT_CONFIG, '--from', 'x@acme.test', '--auth', 'globex-app']);
  t.equal(refused.code, 1);
  t.match(refused.stdout, /^refused: 553 5\.7\.1 /);
});

t.test('explain --header-from shows the headers the message would leave with', async (t) => {
  const r = await run(['explain', '--config', DEFAULT_CONFIG, '--from', 'app@acme.test', '--header-from', 'Workflow <app@acme.test>', '--rcpt', 'x@example.com']);
  t.equal(r.code, 0);
  t.match(r.stdout, /\nheader: {3}From: Acme Notifications <notifications@acme\.test>\n/);
  t.match(r.stdout, /\nheader: {3}Reply-To: support@acme\.test\n/);
});

t.test('hash-password makes a hash that verifies', async (t) => {
  const r = await run(['hash-password'], 's3cret\n');
  t.equal(r.code, 0);
  t.ok(await verifyPassword('s3cret', r.stdout.trim()));
  t.notOk(await verifyPassword('other', r.stdout.trim()));
});

t.test('usage errors exit 2', async (t) => {
  t.equal((await run(['frobnicate'])).code, 2);
  t.equal((await run(['explain', '--config', DEFAULT_CONFIG])).code, 2);
  t.equal((await run(['check', '--nope'])).code, 2);
  t.equal((await run(['--help'])).code, 0);
});

t.test('every command has --help', async (t) => {
  for (const command of ['serve', 'check', 'explain', 'preflight', 'send-test', 'queue', 'hash-password', 'schema']) {
    const r = await run([command, '--help']);
    t.equal(r.code, 0, command);
    t.match(r.stdout, new RegExp(`^Usage: tenant-relay ${command}`), command);
  }
});
