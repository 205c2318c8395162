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
  };
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return cached;
}
