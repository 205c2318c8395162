// `tenant-relay send-test` through a running relay: the route, the relay's reply, the upstream's reply
// and the headers as sent (DKIM-Signature, Received, From, Reply-To), for each notification kind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfigFile } from '../config/load.js';
import { hashPassword } from '../relay/inbound/passwords.js';
import { silentLogger } from '../relay/log.js';
import { startRelay } from '../relay/runtime/start-relay.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { makeDkimKey } from './helpers/dkim.js';
import { closedPort, startUpstream } from './helpers/upstream.js';

const upstream = await startUpstream();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-send-test-'));
const key = makeDkimKey('ed25519');
fs.writeFileSync(path.join(dir, 'dkim.pem'), key.privateKeyPem);
const file = path.join(dir, 'relay.yaml');
// The command finds the relay and its ops listener through the config, so the ports are fixed here.
fs.writeFileSync(
  file,
  `listen: [{ host: 127.0.0.1, port: ${await closedPort()} }]
inbound: { users: [{ username: app, passwordHash: "${await hashPassword('app-password')}" }] }
ops: { port: ${await closedPort()} }
delivery: { spool: { path: ${dir}/spool } }
dkim: { selector: platform, privateKey: "\${file:${dir}/dkim.pem}" }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test], authUsers: [app] }
    identity: { from: notifications@acme.test, displayName: Acme, replyTo: support@acme.test }
`,
);
const relay = await startRelay(loadConfigFile(file), { logger: silentLogger });
t.teardown(async () => {
  await relay.close(0);
  await upstream.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const sendTest = async (...args: string[]) => {
  const r = await runCli(['send-test', '--config', file, ...args]);
  return { code: r.code, stdout: r.stdout + r.stderr };
};

for (const kind of ['password-reset', 'reminder', 'form-submission']) {
  t.test(`${kind}: route, relay reply, upstream reply and headers as sent`, async (t) => {
    const r = await sendTest('--tenant', 'acme', '--to', 'customer@example.com', '--kind', kind);
    t.equal(r.code, 0, r.stdout);
    t.match(r.stdout, /^route: {4}tenant acme via upstream smarthost: sender domain acme\.test is tenant acme/m);
    t.match(r.stdout, /^relay: {4}250 2\.0\.0 Ok: queued as \w+$/m);
    t.match(r.stdout, /^upstream: smarthost <customer@example\.com> sent: 250 2\.0\.0 Ok: queued as (4Tq\d{6}Z) \(the upstream's queue id: \1\)$/m, "the upstream's own reply, with its queue id");
    t.match(r.stdout, /^ {2}DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed\/relaxed; d=acme\.test;/m);
    t.match(r.stdout, /^ {2}Received: from .* by .*\(tenant-relay\) with ESMTP id /m);
    t.match(r.stdout, /^ {2}From: Acme <notifications@acme\.test>$/m);
    t.match(r.stdout, /^ {2}Reply-To: support@acme\.test$/m);
  });
}

t.test('the sample really reached the upstream, multipart, with the tenant identity', async (t) => {
  const last = upstream.received.at(-1)?.raw.toString() ?? '';
  t.match(last, /\r\nFrom: Acme <notifications@acme\.test>\r\n/);
  t.match(last, /Content-Type: multipart\/alternative/);
});

t.test('as a real process: the same lines and exit code', async (t) => {
  const r = await spawnCli(['send-test', '--config', file, '--tenant', 'acme', '--to', 'customer@example.com']).done;
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^upstream: smarthost <customer@example\.com> sent: 250 2\.0\.0 Ok: queued as (4Tq\d{6}Z) \(the upstream's queue id: \1\)$/m, "the upstream's own reply, with its queue id");
});

t.test('usage errors exit 2 and name what is missing; an unknown tenant is named, exit 1', async (t) => {
  const nobody = await sendTest('--tenant', 'nobody', '--to', 'x@example.com');
  t.equal(nobody.code, 1);
  t.match(nobody.stdout, /^tenant-relay send-test: no tenant "nobody" in .*relay\.yaml \(its tenants: acme\)$/m);
  t.notMatch(nobody.stdout, /required/, 'the options given are not called missing');
  const noTo = await sendTest('--tenant', 'acme');
  t.equal(noTo.code, 2);
  t.match(noTo.stdout, /^tenant-relay send-test: --to ADDRESS is required$/m);
  const kind = await sendTest('--tenant', 'acme', '--to', 'x@example.com', '--kind', 'spam');
  t.equal(kind.code, 2);
  t.match(kind.stdout, /--kind spam is not a sample; one of: password-reset, reminder, form-submission/);
});

t.test('with --auth the password comes from TENANT_RELAY_PASSWORD or standard input, never the command line', async (t) => {
  const fromStdin = await spawnCli(['send-test', '--config', file, '--tenant', 'acme', '--to', 'x@example.com', '--auth', 'app'], { stdin: 'app-password\n' }).done;
  t.equal(fromStdin.code, 0, fromStdin.stdout + fromStdin.stderr);
  const fromEnv = await spawnCli(['send-test', '--config', file, '--tenant', 'acme', '--to', 'x@example.com', '--auth', 'app'], { env: { TENANT_RELAY_PASSWORD: 'app-password' } }).done;
  t.equal(fromEnv.code, 0, fromEnv.stdout + fromEnv.stderr);
  const wrong = await spawnCli(['send-test', '--config', file, '--tenant', 'acme', '--to', 'x@example.com', '--auth', 'app'], { stdin: 'nope\n' }).done;
  t.equal(wrong.code, 1);
  t.match(wrong.stdout, /^relay: {4}535 /m);
  t.equal((await sendTest('--tenant', 'acme', '--to', 'x@example.com', '--auth', 'app', '--password', 'app-password')).code, 2, '--password is not an option');
});
