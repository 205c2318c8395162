// The one place that talks to mailauth (its signer). Only the DKIM module is loaded: the main entry also
// loads BIMI, ARC and an HTTP client (undici), ~0.2 s of a relay's start for nothing it uses. mailauth
// has no exports map, so the path is the package's own file.
import type { Readable } from 'node:stream';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import type { DkimPrivateKey } from '../../config/types.js';

export interface DkimSignature {
  /** The DKIM-Signature header line(s), each ending in CRLF, to put in front of the message. */
  readonly header: string;
}

export async function signDkim(message: Buffer | Readable, signingDomain: string, selector: string, key: DkimPrivateKey): Promise<DkimSignature> {
  const result = await dkimSign(message, {
    canonicalization: 'relaxed/relaxed',
    // Top-level signingDomain/selector/privateKey are ignored by mailauth without a word: use signatureData.
    signatureData: [{ signingDomain, selector, privateKey: key.pem, algorithm: key.algorithm }],
  } as Parameters<typeof dkimSign>[1]);
  const [error] = result.errors ?? [];
  if (error || !result.signatures) {
    throw new Error(`DKIM signing failed: ${error?.err?.message ?? 'no signature produced'}`);
  }
  return { header: result.signatures };
}
