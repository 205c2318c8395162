// Real certificates for real TLS in tests, made with openssl in a temporary folder: a private CA and a
// server certificate it signs for localhost/127.0.0.1, and a self-signed one nothing trusts.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCerts {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: string;
  /** Signed by the CA, valid for localhost and 127.0.0.1. */
  readonly server: { readonly key: string; readonly cert: string };
  /** Self-signed, valid names, trusted by nobody. */
  readonly selfSigned: { readonly key: string; readonly cert: string };
  /** The CA's key file, for certificates a test signs itself (clientCertificate). */
  readonly caKeyFile: string;
}

/**
 * A client certificate signed by the test CA for `domain` (subject CN and DNS name), valid `days` days,
 * in files under the test's folder: what the relay presents to an upstream that knows it by certificate.
 */
export function makeClientCertificate(domain: string, days = 30, ca: TestCerts = makeTestCerts()): { readonly certFile: string; readonly keyFile: string; readonly cert: string; readonly key: string } {
  const f = (name: string) => path.join(ca.dir, `${domain}-${days}-${name}`);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${domain}`, '-keyout', f('client.key'), '-out', f('client.csr'));
  fs.writeFileSync(f('client.ext'), `subjectAltName=DNS:${domain}\nextendedKeyUsage=clientAuth\n`);
  openssl('x509', '-req', '-in', f('client.csr'), '-CA', ca.caFile, '-CAkey', ca.caKeyFile, '-CAcreateserial', '-days', String(days), '-extfile', f('client.ext'), '-out', f('client.pem'));
  return { certFile: f('client.pem'), keyFile: f('client.key'), cert: fs.readFileSync(f('client.pem'), 'utf8'), key: fs.readFileSync(f('client.key'), 'utf8') };
}

let cached: TestCerts | undefined;

export function makeTestCerts(): TestCerts {
  if (cached) return cached;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-certs-'));
  const f = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const san = 'subjectAltName=DNS:localhost,IP:127.0.0.1';

  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=tenant-relay test CA',
    '-keyout', f('ca.key'), '-out', f('ca.pem'), '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', f('server.key'), '-out', f('server.csr'));
  fs.writeFileSync(f('server.ext'), `${san}\nextendedKeyUsage=serverAuth\n`);
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2',
    '-extfile', f('server.ext'), '-out', f('server.pem'));
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-keyout', f('self.key'), '-out', f('self.pem'), '-addext', san);

  const read = (name: string) => fs.readFileSync(f(name), 'utf8');
  cached = {
    dir,
    caFile: f('ca.pem'),
    ca: read('ca.pem'),
    server: { key: read('server.key'), cert: read('server.pem') },
    selfSigned: { key: read('self.key'), cert: read('self.pem') },
    caKeyFile: f('ca.key'),
  };
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return cached;
}
