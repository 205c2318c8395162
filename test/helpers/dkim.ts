// DKIM keys made by the test, their DNS records, and two verifiers that share no code with the signer's
// setup: mailauth's verifier with a stub resolver, and Debian's python3-dkim (dkimpy) when installed.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import { dkimVerify } from 'mailauth';

export interface TestDkimKey {
  readonly privateKeyPem: string;
  /** The TXT record to publish at <selector>._domainkey.<domain>. */
  readonly record: string;
}

export function makeDkimKey(type: 'rsa' | 'ed25519'): TestDkimKey {
  if (type === 'rsa') {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    return { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), record: `v=DKIM1; k=rsa; p=${p}` };
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  // RFC 8463: the raw 32-byte public key, which is the tail of the SPKI DER.
  const p = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
  return { privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), record: `v=DKIM1; k=ed25519; p=${p}` };
}

export type DnsRecords = Record<string, string>;

export interface Verdict {
  readonly result: string;
  readonly domain?: string;
  readonly selector?: string;
  readonly headers?: string;
}

/** Each signature's result, as mailauth's verifier reads it. */
export async function verifyWithMailauth(message: Buffer, records: DnsRecords): Promise<Verdict[]> {
  const resolver = async (name: string, type: string) => {
    const record = records[name];
    if (type !== 'TXT' || !record) throw Object.assign(new Error(`no ${type} for ${name}`), { code: 'ENOTFOUND' });
    return [[record]];
  };
  const { results } = await dkimVerify(message, { resolver } as Parameters<typeof dkimVerify>[1]);
  return (results ?? []).map((r) => ({
    result: r.status.result,
    domain: r.signingDomain,
    selector: r.selector,
    headers: (r.status as { header?: { h?: string } }).header?.h ?? (r as { signingHeaders?: { keys?: string } }).signingHeaders?.keys,
  }));
}

const DEBIAN_PYTHON = '/usr/bin/python3';

/** Whether dkimpy is installed (`.ci/run` installs python3-dkim). */
export function hasDkimpy(): boolean {
  try {
    execFileSync(DEBIAN_PYTHON, ['-c', 'import dkim, nacl'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** dkimpy's verdict on the first signature: true if it verifies. DNS answers come from `records`. */
export function verifyWithDkimpy(message: Buffer, records: DnsRecords, dir: string): boolean {
  const recordsFile = `${dir}/records.json`;
  fs.writeFileSync(recordsFile, JSON.stringify(records));
  const script = [
    'import dkim, json, sys',
    `records = json.load(open(${JSON.stringify(recordsFile)}))`,
    'def dns(name, timeout=5):',
    '    return records.get(name.decode().rstrip("."), "").encode()',
    'sys.exit(0 if dkim.verify(sys.stdin.buffer.read(), dnsfunc=dns) else 1)',
  ].join('\n');
  try {
    execFileSync(DEBIAN_PYTHON, ['-c', script], { input: message, stdio: ['pipe', 'ignore', 'pipe'] });
    return true;
  } catch {
    return false;
  }
}
