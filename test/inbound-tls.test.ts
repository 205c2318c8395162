// Inbound TLS (SCENARIOS 21, 30): STARTTLS and implicit TLS listeners, TLS 1.2 at least, no AUTH before
// TLS, and a certificate replaced on disk served to the next client without a restart.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import nodemailer from 'nodemailer';
import t from 'tap';
import { hashPassword } from '../relay/inbound/passwords.js';
import { makeTestCerts } from './helpers/certs.js';
import { startTestRelay } from './helpers/relay.js';
import { openRawSession } from './helpers/smtp-client.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const certs = makeTestCerts();
const upstream = await startUpstream();
const hash = await hashPassword('pw');
// The listener reads its own copies, so the reload test can replace them.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-tls-'));
fs.copyFileSync(path.join(certs.dir, 'server.pem'), path.join(dir, 'cert.pem'));
fs.copyFileSync(path.join(certs.dir, 'server.key'), path.join(dir, 'key.pem'));

const relay = await startTestRelay(`
listen:
  - { host: 127.0.0.1, port: 0, tls: starttls, cert: ${dir}/cert.pem, key: ${dir}/key.pem }
  - { host: 127.0.0.1, port: 0, tls: implicit, cert: ${dir}/cert.pem, key: ${dir}/key.pem }
inbound: { users: [{ username: app, passwordHash: "${hash}" }], allowUnauthenticatedFrom: [] }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
`);
const [starttlsPort, implicitPort] = relay.relay.addresses.map((a) => a.port);
t.teardown(async () => {
  await relay.close();
  await upstream.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

t.test('a STARTTLS listener offers AUTH only after TLS; AUTH before STARTTLS is refused with 538; after STARTTLS it works', async (t) => {
  const plain = await openRawSession(starttlsPort ?? 0);
  t.teardown(() => plain.close());
  const ehlo = await plain.send('EHLO client.test\r\n');
  t.match(ehlo, /250[- ]STARTTLS/);
  t.notMatch(ehlo, /AUTH/, 'no AUTH offered in cleartext (as Postfix with smtpd_tls_auth_only)');
  t.match(await plain.send(`AUTH PLAIN ${b64('\0app\0pw')}\r\n`), /^538 5\.7\.11 /, 'RFC 4954: encryption required');

  const secure = await openRawSession(starttlsPort ?? 0, { starttlsCa: certs.ca });
  t.teardown(() => secure.close());
  const overTls = await secure.send('EHLO client.test\r\n');
  t.match(overTls, /250[- ]AUTH PLAIN LOGIN/);
  t.notMatch(overTls, /STARTTLS/);
  t.match(await secure.send(`AUTH PLAIN ${b64('\0app\0pw')}\r\n`), /^235 /);
});

t.test('an app using STARTTLS and AUTH sends through the relay', async (t) => {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: starttlsPort, requireTLS: true, tls: { ca: certs.ca, servername: 'localhost' }, auth: { user: 'app', pass: 'pw' } });
  t.teardown(() => transport.close());
  const info = await transport.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.com'] }, raw: 'Subject: tls\r\n\r\nhi\r\n' });
  t.match(info.response, /^250 /);
});

t.test('implicit TLS (465 style) works, and TLS below 1.2 is refused', async (t) => {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: implicitPort, secure: true, tls: { ca: certs.ca, servername: 'localhost' }, auth: { user: 'app', pass: 'pw' } });
  t.teardown(() => transport.close());
  t.match((await transport.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.com'] }, raw: 'Subject: tls\r\n\r\nhi\r\n' })).response, /^250 /);

  const old = await new Promise<string>((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: implicitPort ?? 0, ca: certs.ca, servername: 'localhost', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
    socket.once('secureConnect', () => resolve(`negotiated ${socket.getProtocol()}`));
    socket.once('error', (err) => resolve(`refused: ${err.message}`));
  });
  t.match(old, /^refused/);
});

t.test('commands pipelined after STARTTLS in cleartext are dropped, never run in the encrypted session (RFC 3207 5)', async (t) => {
  const socket = net.connect(starttlsPort ?? 0, '127.0.0.1');
  t.teardown(() => socket.destroy());
  let plain = '';
  socket.on('data', (d: Buffer) => (plain += d.toString('latin1')));
  await until(() => /^220 /m.test(plain), 5_000);
  socket.write('EHLO client.test\r\n');
  await until(() => /^250 /m.test(plain), 5_000);
  // The injected command rides in the same segment as STARTTLS (CVE-2011-0411's attack).
  socket.write('STARTTLS\r\nAUTH PLAIN AGFwcABwdw==\r\n');
  await until(() => /^220 2\.0\.0 Ready/m.test(plain), 5_000);
  socket.removeAllListeners('data');
  const secure = tls.connect({ socket, ca: certs.ca, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
  let encrypted = '';
  secure.on('data', (d: Buffer) => (encrypted += d.toString('latin1')));
  secure.write('NOOP\r\n');
  t.ok(await until(() => /\r\n$/.test(encrypted), 5_000), 'a reply over TLS');
  t.equal(encrypted, '250 2.0.0 OK\r\n', "the NOOP's reply, and nothing for the injected AUTH");
  t.notMatch(plain, /^(235|535|334)/m, 'the injected AUTH was not answered in cleartext either');
});

t.test('a certificate replaced on disk is served to the next client without a restart', async (t) => {
  const fingerprint = () =>
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: implicitPort ?? 0, rejectUnauthorized: false, servername: 'localhost' }, () => {
        resolve(socket.getPeerCertificate().fingerprint256);
        socket.destroy();
      });
      socket.once('error', reject);
    });
  const before = await fingerprint();
  const next = path.join(dir, 'next');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-keyout', `${next}.key`, '-out', `${next}.pem`], { stdio: 'ignore' });
  // As renewal tools do: write aside, rename into place.
  fs.renameSync(`${next}.key`, path.join(dir, 'key.pem'));
  fs.renameSync(`${next}.pem`, path.join(dir, 'cert.pem'));
  let after = before;
  for (let i = 0; i < 50 && after === before; i++) {
    await new Promise((r) => setTimeout(r, 200));
    after = await fingerprint();
  }
  t.not(after, before, 'the new certificate is served');
  t.ok(relay.logs.some((l) => l.event === 'certificate-reloaded'));
});
