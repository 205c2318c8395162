// `tenant-relay send-test` through a running relay: the route, the relay's reply, the upstream's reply
// and the headers as sent (DKIM-Signature, Received, From, Reply-To), for each notification kind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfigFile } from '../config/load.js';
import { silentLogger } from '../relay/ops/log.js';
import { startRelay } from '../relay/relay.js';
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
ops: { port: ${await closedPort()} }
delivery: { spool: { path: ${dir}/spool } }
dkim: { selector: platform, privateKey: "\${file:${dir}/dkim.pem}" }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test] }
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

t.test('usage errors exit 2', async (t) => {
  t.equal((await sendTest('--tenant', 'nobody', '--to', 'x@example.com')).code, 2);
  t.equal((await sendTest('--tenant', 'acme', '--to', 'x@example.com', '--kind', 'spam')).code, 2);
});
