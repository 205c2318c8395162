// What the builders share: a CA file read (a problem at its key when it cannot be), a value frozen deeply.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ClientCertificate } from './types.js';
import type { PathIssue } from './validate.js';

/** The PEM text of a private CA file, or a problem at `at` when it cannot be read. */
export function readCa(file: string | undefined, at: (string | number)[], problems: PathIssue[]): string | undefined {
  if (file === undefined) return undefined;
  try {
    return fs.readFileSync(path.resolve(file), 'utf8');
  } catch (err) {
    problems.push({ path: at, message: `cannot read CA file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}` });
    return undefined;
  }
}

/** The snapshot is immutable all the way down: a reload swaps it, nothing edits it. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** A client certificate from its PEM files: both readable, a certificate and a private key that belong together. */
export function readClientCertificate(certFile: string, keyFile: string, label: string, at: { cert: (string | number)[]; key: (string | number)[] }, problems: PathIssue[]): ClientCertificate | undefined {
  const read = (file: string, where: (string | number)[]) => {
    try {
      return fs.readFileSync(path.resolve(file), 'utf8');
    } catch (err) {
      problems.push({ path: where, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}` });
      return undefined;
    }
  };
  const cert = read(certFile, at.cert);
  const key = read(keyFile, at.key);
  if (cert === undefined || key === undefined) return undefined;
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    problems.push({ path: at.cert, message: 'is not a PEM certificate' });
    return undefined;
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) {
      problems.push({ path: at.key, message: 'does not belong to the certificate' });
      return undefined;
    }
  } catch {
    problems.push({ path: at.key, message: 'is not a PEM private key' });
    return undefined;
  }
  return { label, cert, key, files: [path.resolve(certFile), path.resolve(keyFile)] };
}
