// Reading the address headers that name a sender (From, Sender, Resent-), and writing From and Reply-To.
// Writing goes through nodemailer's encoder: RFC 2047 for non-ASCII display names, punycode for IDN
// domains, quoting where a name needs it.
import libmime from 'libmime';
import addressparser from 'nodemailer/lib/addressparser';
import MimeNode from 'nodemailer/lib/mime-node';
import type { HeaderBlock } from './header-block.js';

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

type Parsed = ReturnType<typeof addressparser>;

/**
 * Every mailbox in a header value, in order, with display names decoded. Members of a group count: a From
 * of "Board: ceo@other.example;" names that address to a reader as much as a plain one does.
 */
export const parseMailboxes = memo((value: string): readonly Mailbox[] => {
  const found: Mailbox[] = [];
  const walk = (entries: Parsed) => {
    for (const entry of entries) {
      if ('group' in entry && entry.group) walk(entry.group);
      else if ('address' in entry && entry.address) found.push(Object.freeze({ name: libmime.decodeWords(entry.name ?? ''), address: entry.address }));
    }
  };
  walk(addressparser(value.replace(/\r?\n(?=[ \t])/g, '')));
  return Object.freeze(found);
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

/** The addresses of the header block's first From, in order (none when it has no From). */
export function fromAddresses(headers: HeaderBlock): string[] {
  return parseMailboxes(headers.first('from')).map((m) => m.address);
}

/**
 * Headers that name who sent a message for its author: readers show them beside the From ("sent by ... on
 * behalf of", "resent by"), so they name a sender as much as the From does.
 */
export const AGENT_HEADERS = ['Sender', 'Resent-From', 'Resent-Sender'] as const;
export type AgentHeader = (typeof AGENT_HEADERS)[number];
export interface AgentAddress {
  readonly header: AgentHeader;
  readonly address: string;
}

/** Every address the agent headers name, in order, each line of them (Resent- blocks repeat); stops past `limit`. */
export function agentAddresses(headers: HeaderBlock, limit: number): AgentAddress[] {
  const out: AgentAddress[] = [];
  for (const header of AGENT_HEADERS) {
    for (const value of headers.values(header)) {
      for (const m of parseMailboxes(value)) {
        out.push({ header, address: m.address });
        if (out.length > limit) return out;
      }
    }
  }
  return out;
}
