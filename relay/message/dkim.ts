// The one place that talks to mailauth (its signer). Only the DKIM module is loaded (the main entry also
// loads BIMI, ARC and an HTTP client, ~0.2 s of a start for nothing the relay uses; mailauth has no
// exports map, so the path is the package's own file), and only when a message is first signed: a relay
// whose tenants sign with their own infrastructure never loads it, and none waits for it to listen.
//
// Over-signing: the platform signs every tenant's mail with its key, so its signatures are worth reusing:
// a second From (or Reply-To, Subject) added above the signed one is what many receivers show, while a
// signature that named From only as often as it appeared still verifies. Each name below is listed in
// h= once more than the message has it, present or not (RFC 6376 section 5.4.2), so any instance added
// after signing breaks the signature. mailauth 7.1.0 cannot do that through its options;
// patches/mailauth+7.1.0.patch (applied by patch-package at install) adds `oversignHeaderList` to its
// signer, and checkDkimSigner() refuses to start a relay whose mailauth lacks it.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { dkimSign as DkimSign } from 'mailauth/lib/dkim/sign.js';
import type { DkimPrivateKey } from '../../config/types.js';

/** What a reader sees or a client acts on: an instance added later must break the signature. */
export const OVERSIGNED_HEADERS = ['From', 'Reply-To', 'Subject', 'To', 'Cc', 'Date', 'Message-ID', 'Content-Type'] as const;

const MAILAUTH_VERSION = '7.1.0';

export interface DkimSignature {
  /** The DKIM-Signature header line(s), each ending in CRLF, to put in front of the message. */
  readonly header: string;
}

let signer: Promise<{ dkimSign: typeof DkimSign; defaultHeaders: string }> | undefined;
const loadSigner = () =>
  (signer ??= Promise.all([import('mailauth/lib/dkim/sign.js'), import('mailauth/lib/tools.js')]).then(([sign, tools]) => ({
    dkimSign: sign.dkimSign,
    defaultHeaders: tools.defaultDKIMFieldNames,
  })));

/** `alsoOversign`: header names of the relay's own (original From, route header) to cover the same way. */
export async function signDkim(message: Buffer | Readable, signingDomain: string, selector: string, key: DkimPrivateKey, alsoOversign: readonly string[] = []): Promise<DkimSignature> {
  const { dkimSign, defaultHeaders } = await loadSigner();
  const result = await dkimSign(message, {
    canonicalization: 'relaxed/relaxed',
    // The signer hashes only the names of its header list: names to over-sign must be in it too.
    ...(alsoOversign.length > 0 ? { headerList: `${defaultHeaders}:${alsoOversign.join(':')}` } : {}),
    oversignHeaderList: [...OVERSIGNED_HEADERS, ...alsoOversign],
    // Top-level signingDomain/selector/privateKey are ignored by mailauth without a word: use signatureData.
    signatureData: [{ signingDomain, selector, privateKey: key.pem, algorithm: key.algorithm }],
  } as Parameters<typeof DkimSign>[1]);
  const [error] = result.errors ?? [];
  if (error || !result.signatures) {
    throw new Error(`DKIM signing failed: ${error?.err?.message ?? 'no signature produced'}`);
  }
  return { header: result.signatures };
}

/** Throws, naming what to do, when the installed mailauth is not the patched version signDkim() needs. */
export function checkDkimSigner(): void {
  const require = createRequire(import.meta.url);
  const installed = (require('mailauth/package.json') as { version: string }).version;
  const patched = fs.readFileSync(require.resolve('mailauth/lib/dkim/dkim-signer.js'), 'utf8').includes('oversignHeaderList');
  if (installed !== MAILAUTH_VERSION || !patched) {
    throw new Error(
      `tenant-relay needs mailauth ${MAILAUTH_VERSION} with patches/mailauth+${MAILAUTH_VERSION}.patch applied (found ${installed}, ${patched ? 'patched' : 'not patched'}): run npm ci, which applies it`,
    );
  }
}
