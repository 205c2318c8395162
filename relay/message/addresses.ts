// Reading and writing the address headers From and Reply-To. Writing goes through nodemailer's encoder:
// RFC 2047 for non-ASCII display names, punycode for IDN domains, quoting where a name needs it.
import { Headers } from '@zone-eu/mailsplit';
import libmime from 'libmime';
import addressparser from 'nodemailer/lib/addressparser';
import MimeNode from 'nodemailer/lib/mime-node';

export interface Mailbox {
  readonly name: string;
  readonly address: string;
}

/** The first mailbox in a header value, with its display name decoded; undefined if there is none. */
export function parseMailbox(value: string): Mailbox | undefined {
  for (const entry of addressparser(value.replace(/\r?\n(?=[ \t])/g, ''))) {
    if ('address' in entry && entry.address) return { name: libmime.decodeWords(entry.name ?? ''), address: entry.address };
  }
  return undefined;
}

const encoder = new MimeNode();

/** The header value (after "Name: ") for one mailbox. */
export function formatMailbox(header: 'From' | 'Reply-To', mailbox: Mailbox): string {
  return encoder.encodeHeaderValue(header, [{ name: mailbox.name, address: mailbox.address }]);
}

/** The address of the header block's first From, or undefined when it has none. */
export function headerFromAddress(header: Buffer): string | undefined {
  return parseMailbox(new Headers(header).getFirst('from'))?.address;
}
