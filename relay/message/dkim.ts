// The one place that talks to mailauth (its signer). Only the DKIM module is loaded (the main entry also
// loads BIMI, ARC and an HTTP client, ~0.2 s of a start for nothing the relay uses; mailauth has no
// exports map, so the path is the package's own file), and only when a message is first signed: a relay
// whose tenants sign with their own infrastructure never loads it, and none waits for it to listen.
import type { Readable } from 'node:stream';
import type { dkimSign as DkimSign } from 'mailauth/lib/dkim/sign.js';
import type { DkimPrivateKey } from '../../config/types.js';

let signer: Promise<typeof DkimSign> | undefined;
const loadSigner = () => (signer ??= import('mailauth/lib/dkim/sign.js').then((m) => m.dkimSign));

export interface DkimSignature {
  /** The DKIM-Signature header line(s), each ending in CRLF, to put in front of the message. */
  readonly header: string;
}

export async function signDkim(message: Buffer | Readable, signingDomain: string, selector: string, key: DkimPrivateKey): Promise<DkimSignature> {
  const dkimSign = await loadSigner();
  const result = await dkimSign(message, {
    canonicalization: 'relaxed/relaxed',
    // Top-level signingDomain/selector/privateKey are ignored by mailauth without a word: use signatureData.
    signatureData: [{ signingDomain, selector, privateKey: key.pem, algorithm: key.algorithm }],
  } as Parameters<typeof DkimSign>[1]);
  const [error] = result.errors ?? [];
  if (error || !result.signatures) {
    throw new Error(`DKIM signing failed: ${error?.err?.message ?? 'no signature produced'}`);
  }
  return { header: result.signatures };
}
