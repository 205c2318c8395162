// A deferred message's texts repeat across the queue: one upstream's refusal and its own words, one
// sender, one tenant, for every message that waited on the same outage. Read back from the spool (JSON)
// or made by an attempt (one reply string a message), each copy is a string of its own; with 100,000
// deferred messages that was about 340 of a 790-byte entry (a loop of parsed entries, two 100-character
// replies each). Kept once here instead. Only equal strings are shared, so nothing of one message or
// tenant reaches another; the table is bounded and starts over when full (texts with a queue id or a
// time in them never repeat, and must not keep the ones that do out).
import type { QueuedMessage, QueuedRecipient } from './entry.js';

export const MAX_SHARED_TEXTS = 4096;
/** Longer texts are kept as they are (upstream words are capped well under this). */
const MAX_LENGTH = 1024;

const texts = new Map<string, string>();

/** The one copy of `text` this process keeps (`text` itself the first time). */
export function sharedText(text: string): string {
  if (text.length > MAX_LENGTH) return text;
  const known = texts.get(text);
  if (known !== undefined) return known;
  if (texts.size >= MAX_SHARED_TEXTS) texts.clear();
  texts.set(text, text);
  return text;
}

/** How many texts are kept now (at most MAX_SHARED_TEXTS). */
export const sharedTextsHeld = () => texts.size;

/** The entry with its repeated texts shared: for an entry held while it waits (recovered or deferred). */
export function withSharedTexts(entry: QueuedMessage): QueuedMessage {
  return {
    ...entry,
    mailFrom: sharedText(entry.mailFrom),
    tenant: entry.tenant === null ? null : sharedText(entry.tenant),
    recipients: entry.recipients.map(sharedRecipientTexts),
    ...(entry.lastError !== undefined ? { lastError: sharedText(entry.lastError) } : {}),
  };
}

function sharedRecipientTexts(r: QueuedRecipient): QueuedRecipient {
  if (r.reply === undefined && r.upstreamReply === undefined) return r;
  return {
    ...r,
    ...(r.reply !== undefined ? { reply: sharedText(r.reply) } : {}),
    ...(r.upstreamReply !== undefined ? { upstreamReply: sharedText(r.upstreamReply) } : {}),
  };
}
