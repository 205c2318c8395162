// Reading and writing the address headers From and Reply-To. Writing goes through nodemailer's encoder:
// RFC 2047 for non-ASCII display names, punycode for IDN domains, quoting where a name needs it.
import libmime from 'libmime';
import addressparser from 'nodemailer/lib/addressparser';
import MimeNode from 'nodemailer/lib/mime-node';
import { HeaderBlock } from './header-block.js';

export interface Mailbox {
  readonly name: string;
  readonly address: string;
}

/**
 * Both functions below are pure and met with the same few values over and over (an app's From, a tenant's
 * identity): parsing and encoding them was most of the header rewrite's time per message. Results are
 * kept for short values only, in a table emptied when full, so a client sending a new From every time
 * costs the table nothing but its turnover.
 */
const MEMO_ENTRIES = 256;
const MEMO_KEY_CHARS = 512;

function memo<T>(compute: (key: string) => T): (key: string) => T {
  const table = new Map<string, T>();
  return (key) => {
    if (key.length > MEMO_KEY_CHARS) return compute(key);
    const known = table.get(key);
    if (known !== undefined || table.has(key)) return known as T;
    const value = compute(key);
    if (table.size >= MEMO_ENTRIES) table.clear();
    table.set(key, value);
    return value;
  };
}

/** The first mailbox in a header value, with its display name decoded; undefined if there is none. */
export const parseMailbox = memo((value: string): Mailbox | undefined => {
  for (const entry of addressparser(value.replace(/\r?\n(?=[ \t])/g, ''))) {
    if ('address' in entry && entry.address) return Object.freeze({ name: libmime.decodeWords(entry.name ?? ''), address: entry.address });
  }
  return undefined;
});

const encoder = new MimeNode();
// The key joins the three parts with NUL; a name or address holding a NUL is encoded without the table,
// so no two mailboxes can share a key.
const formatValue = memo((key: string) => {
  const [header, name, address] = key.split('\0');
  return encoder.encodeHeaderValue(header ?? 'From', [{ name: name ?? '', address: address ?? '' }]);
});

/** The header value (after "Name: ") for one mailbox. */
export function formatMailbox(header: 'From' | 'Reply-To', mailbox: Mailbox): string {
  if (mailbox.name.includes('\0') || mailbox.address.includes('\0')) return encoder.encodeHeaderValue(header, [{ name: mailbox.name, address: mailbox.address }]);
  return formatValue(`${header}\0${mailbox.name}\0${mailbox.address}`);
}

/** The address of the header block's first From, or undefined when it has none. */
export function headerFromAddress(header: Buffer): string | undefined {
  return parseMailbox(HeaderBlock.parse(header).first('from'))?.address;
}
