// What the upstream itself answered, kept beside the relay's own reply: its code, enhanced code and text
// (one line, control characters out, bounded) and the queue id it named. The queue id is what the
// tenant's mail admin searches their own server's logs for ("the password reset never arrived").
import { formatReply, formatUpstreamReply, sanitizeUpstreamText } from '../errors.js';
import type { RecipientOutcome, UpstreamReply } from '../types.js';

/** Upstream text longer than this is cut: it is for people and logs, and a server may say a lot. */
const MAX_TEXT = 400;

// How servers name the queue id in their 250 to the final dot, most specific first.
const QUEUE_ID_PATTERNS: readonly RegExp[] = [
  /\bqueued as <?([A-Za-z0-9._@-]{4,100})>?/i, // Postfix, SendGrid, smtp-server: "Ok: queued as 4Xk2Lm0Pq"
  /^OK <([^<>\s]{3,200})> \[.*Hostname=/i, // Microsoft 365: "OK <DM6PR...@namprd...outlook.com> [Hostname=...]"
  /^OK\s+\d{9,11}\s+(\S{4,100})\s+-\s+gsmtp$/i, // Gmail: "OK  1733131200 d2e1a72fcca58-7256...-gsmtp"
  /^Ok ([0-9a-f]{16,40}-[0-9a-f-]{8,60})$/i, // Amazon SES: "Ok 0100018c1c2d3e4f-...-000000"
  /\bMessage Queued \(([^()\s]{4,100})\)/i, // Haraka
  /\bid=([A-Za-z0-9-]{6,40})\b/, // Exim: "OK id=1rAbCd-000123-Ef"
];

/** The reply as the upstream sent it, or undefined for something that is not an SMTP reply. */
export function parseUpstreamReply(raw: string | undefined): UpstreamReply | undefined {
  // Servers spread what they mean over the lines of a multi-line reply (Gmail's quota reply names the
  // limit on its first line and the help page on its last): every line's text is kept, joined, bounded.
  const lines = (raw ?? '').slice(0, 8 * MAX_TEXT).split(/\r?\n/).filter((l) => l.trim() !== '');
  const first = /^([2-5]\d\d)[ -]/.exec(lines[0] ?? '');
  if (!first?.[1]) return undefined;
  const code = Number(first[1]);
  let enhanced: string | undefined;
  const texts = lines.map((line) => {
    const rest = /^[2-5]\d\d[ -]?(.*)$/.exec(line)?.[1] ?? line;
    const own = /^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)/.exec(rest);
    enhanced ??= own?.[1];
    return own ? rest.slice(own[0].length) : rest;
  });
  const text = sanitizeUpstreamText(texts.join(' '), MAX_TEXT);
  const queueId = code < 300 ? queueIdIn(text) : undefined;
  return { code, ...(enhanced ? { enhanced } : {}), text, ...(queueId ? { queueId } : {}) };
}

function queueIdIn(text: string): string | undefined {
  for (const pattern of QUEUE_ID_PATTERNS) {
    const id = pattern.exec(text)?.[1];
    if (id) return id;
  }
  return undefined;
}

/**
 * A recipient's part of a delivery log line: the upstream's own reply with its queue id, and, unless it
 * was sent, our reply and its id (for a sent recipient that is always "delivered via" the line's upstream).
 */
export function outcomeLog(o: RecipientOutcome) {
  const said = o.upstreamReply;
  return {
    rcpt: o.recipient,
    status: o.status,
    ...(o.status === 'sent' ? {} : { reply: formatReply(o.reply), replyId: o.reply.id }),
    ...(said ? { upstreamReply: formatUpstreamReply(said), ...(said.queueId ? { upstreamQueueId: said.queueId } : {}) } : {}),
  };
}
