// `tenant-relay preflight` against real upstreams: what it reports, and a non-zero exit when any
// upstream is unreachable, fails TLS or refuses the credentials. No mail is sent.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { makeTestCerts } from './helpers/certs.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { refusingPort, startUpstream } from './helpers/upstream.js';

const certs = makeTestCerts();
const good = await startUpstream({ tls: 'implicit', cert: certs.server, users: { relay: 'right' } });
const wrongPassword = await startUpstream({ tls: 'starttls', cert: certs.server, users: { relay: 'other' } });
const dead = await refusingPort();
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
  t.match(r.stdout, /^FAIL {2}acme \(127\.0\.0\.1:\d+\) for acme: reachable, TLSv1\.3, certificate expires in [01] days .*, auth \(password\) refused\n {6}the upstream refused the credentials\n {6}upstream said: 535 Invalid credentials$/m);
  t.match(r.stdout, /^FAIL {2}gone \(127\.0\.0\.1:\d+\) for gone: REFUSED, auth not tried\n {6}nothing accepts connections on 127\.0\.0\.1:\d+$/m);
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

t.test('a failure is named by its category with the fix, and of what the far side sent only an SMTP reply is shown', async (t) => {
  const { createServer } = await import('node:net');
  // A web server, a Redis, anything that is not SMTP: its banner must not come back in the report.
  const notSmtp = createServer((socket) => {
    socket.on('error', () => {});
    socket.end('HTTP/1.1 400 Bad Request\r\nServer: secret-internal-thing/1.2\r\n\r\n');
  });
  await new Promise<void>((r) => notSmtp.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => notSmtp.close(() => r())));
  const untrusted = await startUpstream({ tls: 'implicit', cert: certs.selfSigned });
  const plain = await startUpstream({ tls: 'none' });
  const busy = await startUpstream({ greeting: { code: 421, text: '4.3.2 Too busy, try later' } });
  t.teardown(() => Promise.all([untrusted.close(), plain.close(), busy.close()]));
  const port = (s: { address(): unknown }) => (s.address() as { port: number }).port;
  const cases = path.join(dir, 'cases.yaml');
  fs.writeFileSync(
    cases,
    `smarthost: { host: 127.0.0.1, port: ${good.port}, tls: implicit, ca: ${certs.caFile} }
tenants:
  - { id: web, match: { domains: [web.test] }, upstream: { host: 127.0.0.1, port: ${port(notSmtp)}, tls: none } }
  - { id: selfsigned, match: { domains: [s.test] }, upstream: { host: 127.0.0.1, port: ${untrusted.port}, tls: implicit } }
  - { id: nostarttls, match: { domains: [n.test] }, upstream: { host: 127.0.0.1, port: ${plain.port}, tls: starttls } }
  - { id: busy, match: { domains: [b.test] }, upstream: { host: 127.0.0.1, port: ${busy.port}, tls: none } }
`,
  );
  const r = await runCli(['preflight', '--config', cases, '--json']);
  const byName = Object.fromEntries((JSON.parse(r.stdout) as { upstream: string }[]).map((x) => [x.upstream, x]));
  t.match(byName.web, { category: 'not-smtp', ok: false, error: /does not answer like an SMTP server$/ });
  t.notMatch(JSON.stringify(byName.web), /secret-internal-thing|HTTP\/1\.1/, "the far side's banner is not read back");
  t.match(byName.selfsigned, { category: 'tls-failed', error: /not signed by a CA the relay trusts \(set upstream\.ca/ });
  t.notMatch(JSON.stringify(byName.selfsigned), /use-system-ca/);
  t.match(byName.nostarttls, { category: 'tls-failed', error: /did not offer STARTTLS/ });
  t.match(byName.busy, { category: 'smtp-refused', upstreamReply: '421 4.3.2 Too busy, try later' });
  const text = await runCli(['preflight', '--config', cases, '--tenant', 'selfsigned']);
  t.match(text.stdout, /^FAIL {2}selfsigned \(127\.0\.0\.1:\d+\) for selfsigned: reachable, auth not tried\n {6}TLS failed: /m, 'a TLS failure is not called unreachable');
});

t.test('POST /preflight runs at most four candidates at once; the fifth hears 429 at once', async (t) => {
  const { startSilentServer } = await import('./helpers/upstream.js');
  const { startTestRelay } = await import('./helpers/relay.js');
  const silent = await startSilentServer();
  t.teardown(() => silent.close());
  const relay = await startTestRelay(`ops: { port: 0, token: preflight-token-0123456789 }\nsmarthost: { host: 127.0.0.1, port: 9, tls: none }\ntenantSource: { url: "http://127.0.0.1:9/p", upstreamHosts: { allow: [127.0.0.1/32], ports: [] } }\n`);
  t.teardown(() => relay.close());
  const post = () =>
    fetch(`http://127.0.0.1:${relay.relay.opsPort}/preflight`, {
      method: 'POST',
      headers: { authorization: 'Bearer preflight-token-0123456789' },
      body: JSON.stringify({ upstream: { host: '127.0.0.1', port: silent.port, tls: 'none', connectTimeoutSeconds: 2 } }),
    });
  const answers = await Promise.all(Array.from({ length: 5 }, post));
  t.same(answers.map((a) => a.status).sort(), [200, 200, 200, 200, 429]);
  const reports = await Promise.all(answers.filter((a) => a.status === 200).map((a) => a.json() as Promise<{ category: string }>));
  t.ok(reports.every((r) => r.category === 'timeout'), 'a silent server: timeout');
});
