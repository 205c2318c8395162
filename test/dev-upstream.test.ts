// The README's way to try a tenant's config against a local TLS upstream (bin/dev-upstream.js with the
// certificates of certs/make-dev-certs.sh): the relay delivers to it over STARTTLS or implicit TLS with
// AUTH and the CA named in the tenant's `ca`, and it prints what it took.
import { type ChildProcess, spawn } from 'node:child_process';
import t, { type Test } from 'tap';
import { makeTestCerts } from './helpers/certs.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';

const certs = makeTestCerts();

async function devUpstream(t: Test, ...args: string[]): Promise<{ port: number; lines: () => Record<string, unknown>[]; child: ChildProcess }> {
  const child = spawn(process.execPath, ['bin/dev-upstream.js', '--port', '0', '--certs', certs.dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGTERM'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d;
  });
  const port = await new Promise<number>((resolve, reject) => {
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) resolve(Number(m[1]));
    });
    child.once('close', () => reject(new Error(err)));
  });
  return { port, child, lines: () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

for (const tls of ['starttls', 'implicit'] as const) {
  t.test(`a tenant pointed at the local ${tls} upstream: delivered over TLS, authenticated, and shown`, async (t) => {
    const upstream = await devUpstream(t, '--tls', tls, '--user', 'test', '--password', 'test');
    const relay = await startTestRelay(`
tenants:
  - id: acme
    match: { domains: [acme.test] }
    upstream: { host: localhost, port: ${upstream.port}, tls: ${tls}, ca: ${certs.caFile}, username: test, password: test }
    identity: { from: notifications@acme.test, displayName: Acme }
smarthost: { host: 127.0.0.1, port: 9, tls: none }
`);
    t.teardown(() => relay.close());
    const info = await sendThrough(relay.port, { from: 'app@acme.test', to: 'customer@example.com' });
    t.match(info.response, /^250 2\.0\.0 Ok: delivered via acme/);
    t.match(upstream.lines(), [{ user: 'test', tls: true, mailFrom: 'app@acme.test', rcptTo: ['customer@example.com'], from: 'Acme <notifications@acme.test>' }]);
  });
}

t.test('--reply makes it refuse every recipient, to see what the relay does with a refusal', async (t) => {
  const upstream = await devUpstream(t, '--reply', '550 5.1.1 no such user');
  const relay = await startTestRelay(`
tenants: [{ id: acme, match: { domains: [acme.test] }, upstream: { host: localhost, port: ${upstream.port}, tls: starttls, ca: ${certs.caFile}, username: test, password: test } }]
smarthost: { host: 127.0.0.1, port: 9, tls: none }
`);
  t.teardown(() => relay.close());
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: 'gone@example.com' })), /^550 5\.1\.1 /);
});
