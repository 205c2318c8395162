// The relay's own Received: header (RFC 5321 section 4.4). Every part comes from what the relay itself
// knows or has checked; client-supplied names that are not plain host names are left out.
export interface TraceInfo {
  /** The id the relay gave this message (also in its reply and log line). */
  readonly id: string;
  readonly receivedAt: Date;
  /** The relay's own host name. */
  readonly byHost: string;
  readonly clientAddress: string;
  /** What the client said in HELO/EHLO. */
  readonly helo?: string;
  /** The client's name from reverse DNS, if any. */
  readonly clientHostname?: string;
  readonly tls: boolean;
  readonly authenticated: boolean;
  readonly recipients: readonly string[];
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;
const ADDRESS_LITERAL = /^\[(?:IPv6:)?[0-9A-Fa-f:.]{2,45}\]$/;

const safeName = (name: string | undefined) => (name && (HOSTNAME.test(name) || ADDRESS_LITERAL.test(name)) ? name : undefined);

/** The value of the Received header (without "Received: "), folded before "by" and "for" as Postfix does. */
export function receivedValue(t: TraceInfo): string {
  const helo = safeName(t.helo) ?? 'unknown';
  const rdns = safeName(t.clientHostname?.replace(/^\[.*\]$/, ''));
  const ip = t.clientAddress.replace(/^::ffff:(?=\d+\.)/i, '');
  const literal = ip.includes(':') ? `IPv6:${ip}` : ip;
  // RFC 3848: ESMTP, ESMTPS (TLS), ESMTPA (AUTH), ESMTPSA (both).
  const protocol = `ESMTP${t.tls ? 'S' : ''}${t.authenticated ? 'A' : ''}`;
  const [only] = t.recipients;
  // Naming the recipient is only safe when there is one: with more, it would disclose Bcc recipients.
  const forPart = t.recipients.length === 1 && only ? `\r\n\tfor <${only}>` : '';
  return `from ${helo} (${rdns ? `${rdns} ` : ''}[${literal}])\r\n\tby ${t.byHost} (tenant-relay) with ${protocol} id ${t.id}${forPart}; ${rfc5322Date(t.receivedAt)}`;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export function rfc5322Date(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]}, ${pad(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}
