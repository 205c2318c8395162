// Reading one command line: the verb, the address and parameters of MAIL FROM and RCPT TO (RFC 5321
// 4.1.2, RFC 1891 xtext), the name in EHLO and HELO, and AUTH PLAIN's token (RFC 4616). Pure: the
// session decides what each outcome is answered with.
import type { SmtpAddress } from './session-types.js';

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Control characters and the invisible ones that make two addresses look alike. */
const UNSAFE_IN_ADDRESS = /[\u0000-\u001f\u007f-\u009f\u200b\u2060\ufeff]/;
const HTTP_REQUEST = /^(OPTIONS|GET|HEAD|POST|PUT|DELETE|TRACE|CONNECT) \/.* HTTP\/\d\.\d$/i;
/** Parameters that mean nothing without a value. */
const VALUE_PARAMS = new Set(['BODY', 'SIZE', 'RET', 'ENVID', 'NOTIFY', 'ORCPT']);

/** The command's verb in upper case ("MAIL" of "mail from:<...>"). */
export function verbOf(line: string): string {
  const space = line.indexOf(' ');
  return (space === -1 ? line : line.slice(0, space)).toUpperCase();
}

/** A web page's request sent to the SMTP port (a browser made to talk to it). */
export const isHttpRequest = (line: string) => HTTP_REQUEST.test(line);

export type AddressLine =
  | { readonly ok: true; readonly value: SmtpAddress }
  | { readonly ok: false; readonly why: 'syntax' | 'source-route' | 'parameter'; readonly detail?: string };

/** `MAIL FROM:<a@b> SIZE=10` or `RCPT TO:<c@d>`: the address and its parameters. */
export function parseAddressLine(line: string, command: 'MAIL FROM' | 'RCPT TO'): AddressLine {
  const colon = line.indexOf(':');
  if (colon === -1 || line.slice(0, colon).trim().toUpperCase() !== command) return { ok: false, why: 'syntax' };
  const rest = line.slice(colon + 1).trim();
  // A source route (<@relay:user@host>): nothing legitimate sends one now; RFC 5321 lets it be refused.
  if (/^<\s*@/.test(rest)) return { ok: false, why: 'source-route' };
  const close = rest.indexOf('>');
  if (rest[0] !== '<' || close === -1) return { ok: false, why: 'syntax' };
  const address = rest.slice(1, close);
  if (address.includes('<') || UNSAFE_IN_ADDRESS.test(address)) return { ok: false, why: 'syntax' };
  const tail = rest.slice(close + 1);
  if (tail !== '' && !/^\s/.test(tail)) return { ok: false, why: 'syntax' };
  const args: Record<string, string | true> = {};
  for (const param of tail.split(/\s+/)) {
    if (param === '') continue;
    const eq = param.indexOf('=');
    const key = (eq === -1 ? param : param.slice(0, eq)).toUpperCase();
    if (key === '') continue;
    if (Object.hasOwn(args, key)) return { ok: false, why: 'parameter', detail: `Duplicate ${key} parameter` };
    if (eq === -1 || eq === param.length - 1) {
      if (VALUE_PARAMS.has(key)) return { ok: false, why: 'parameter', detail: `The ${key} parameter needs a value` };
      args[key] = true;
      continue;
    }
    const value = decodeXtext(param.slice(eq + 1));
    if (CONTROL.test(value)) return { ok: false, why: 'parameter', detail: `The ${key} parameter has a control character` };
    args[key] = value;
  }
  return { ok: true, value: { address, args } };
}

/** RFC 3461's xtext: "+" and two hex digits stand for a byte. */
function decodeXtext(value: string): string {
  return value.includes('+') ? value.replace(/\+([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))) : value;
}

/** What MAIL FROM's parameters say that the server must refuse; undefined when they are fine. */
export function mailParameterProblem(args: SmtpAddress['args'], maxSize: number): 'size-syntax' | 'too-big' | 'body' | 'smtputf8' | undefined {
  const { SIZE, BODY, SMTPUTF8 } = args;
  if (SIZE !== undefined) {
    if (typeof SIZE !== 'string' || !/^\d{1,20}$/.test(SIZE)) return 'size-syntax';
    if (maxSize > 0 && Number(SIZE) > maxSize) return 'too-big';
  }
  if (BODY !== undefined && (typeof BODY !== 'string' || !/^(7BIT|8BITMIME)$/i.test(BODY))) return 'body';
  if (SMTPUTF8 !== undefined && SMTPUTF8 !== true) return 'smtputf8';
  return undefined;
}

/** The name in `EHLO name` / `HELO name`, lower case; undefined when the line is not exactly that. */
export function heloName(line: string): string | undefined {
  const parts = line.trim().split(/\s+/);
  const name = parts[1] ?? '';
  if (parts.length !== 2 || name.length > 255 || CONTROL.test(name)) return undefined;
  return name.toLowerCase();
}

/** RFC 4616: authzid NUL authcid NUL password, base64; undefined when it is not that. */
export function decodePlain(token: string): { username: string; password: string } | undefined {
  const parts = Buffer.from(token, 'base64').toString('utf8').split('\x00');
  if (parts.length !== 3) return undefined;
  const [authzid = '', authcid = '', password = ''] = parts;
  const username = authcid || authzid;
  if (CONTROL.test(username) || CONTROL.test(authzid)) return undefined;
  return { username, password };
}

/** A base64 line of AUTH LOGIN; undefined when it holds a control character. */
export function decodeLoginLine(line: string): string | undefined {
  const text = Buffer.from(line.trim(), 'base64').toString('utf8');
  return CONTROL.test(text) ? undefined : text;
}

/** A name from reverse DNS fit for the Received header. */
export function isHostname(name: string): boolean {
  return name.length <= 253 && /^(?=[a-z0-9])[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*\.?$/i.test(name);
}
