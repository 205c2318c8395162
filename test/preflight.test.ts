// `tenant-relay preflight` against real upstreams: what it reports, and a non-zero exit when any
// upstream is unreachable, fails TLS or refuses the credentials. No mail is sent.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { makeTestCerts } from './helpers/certs.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { closedPort, startUpstream } from './helpers/upstream.js';

const certs = makeTestCerts();
const good = await startUpstream({ tls: 'implicit', cert: certs.server, users: { relay: 'right' } });
const wrongPassword = await startUpstream({ tls: 'starttls', cert: certs.server, users: { relay: 'other' } });
const dead = await closedPort();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-preflight-'));
t.teardown(async () => {
  await Promise.all([good.close(), wrongPassword.close()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

const file = path.join(dir, 'relay.yaml');
fs.writeFileSync(
  file,
  `smarthost: { host: 127.0.0.1, port: ${good.port}, tls: implicit, ca: ${certs.caFile}, username: relay, password: right }
tenants:
  - { id: acme, match: { domains: [acme.test] }, upstream: { host: 127.0.0.1, port: ${wrongPassword.port}, tls: starttls, ca: ${certs.caFile}, username: relay, password: right } }
  - { id: gone, match: { domains: [gone.test] }, upstream: { host: 127.0.0.1, port: ${dead}, tls: implicit, connectTimeoutSeconds: 2 } }
  - { id: shared, match: { domains: [shared.test] } }
`,
);

const preflight = (...args: string[]) => runCli(['preflight', '--config', file, ...args]);

t.test('reports each upstream once, with TLS version, certificate expiry and AUTH; exit 1 when any fails', async (t) => {
  const r = await preflight();
  t.equal(r.code, 1);
  t.match(r.stdout, /^ok {4}smarthost \(127\.0\.0\.1:\d+\) for shared, \(no tenant\): reachable, TLSv1\.3, certificate expires in [01] days \(.*\), auth \(password\) ok$/m);
  t.match(r.stdout, /^FAIL {2}acme \(127\.0\.0\.1:\d+\) for acme: reachable, TLSv1\.3, certificate expires in [01] days .*, auth \(password\) refused$/m);
  t.match(r.stdout, /^FAIL {2}gone \(127\.0\.0\.1:\d+\) for gone: UNREACHABLE, auth not tried$/m);
  t.equal(good.received.length + wrongPassword.received.length, 0, 'no mail sent');
});

t.test('--tenant checks one tenant; --json gives the report as data', async (t) => {
  const r = await preflight('--tenant', 'shared', '--json');
  t.equal(r.code, 0);
  t.match(JSON.parse(r.stdout), [{ upstream: 'smarthost', tenants: ['shared'], reachable: true, auth: 'ok', ok: true }]);
  t.equal((await preflight('--tenant', 'nobody')).code, 2);
});

t.test('as a real process: the same report and exit code', async (t) => {
  const r = await spawnCli(['preflight', '--config', file, '--tenant', 'shared']).done;
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^ok {4}smarthost \(127\.0\.0\.1:\d+\) for shared: reachable, TLSv1\.3/m);
});
