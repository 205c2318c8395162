// What the spool records of a queued message, besides its bytes. Version 1.
import { type MessageFacts, messageIdOf } from '../observe/outcomes.js';

/** suppressed: skipped, its address suppressed for the tenant (no attempt, no DSN; a `suppressed` event). */
export type RecipientState = 'pending' | 'sent' | 'failed' | 'suppressed';

export interface QueuedRecipient {
  readonly address: string;
  readonly status: RecipientState;
  /** The last reply that explains the status, as "code enhanced text". */
  readonly reply?: string;
  /** What the upstream itself answered in that attempt, as it said it (its queue id is in it). */
  readonly upstreamReply?: string;
}

export interface QueuedMessage {
  readonly v: 1;
  readonly id: string;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  /** The envelope sender as it goes out ('' for the null sender). */
  readonly mailFrom: string;
  /** The decided tenant, or null for the global route; its current upstream is used at each attempt. */
  readonly tenant: string | null;
  /** Bytes of the message as spooled; for an .eml, the end marker that tells a whole file from a torn one. */
  readonly size: number;
  readonly recipients: readonly QueuedRecipient[];
  readonly attempts: number;
  readonly nextAttemptAt: number;
  /** When the first temporary failure happened: the clock for the smarthost fallback. */
  readonly firstTempFailureAt?: number;
  readonly lastError?: string;
  /** A delivery status notification made by the relay: never bounced itself. */
  readonly dsn?: boolean;
  /** The message has bytes over 127: only an upstream with 8BITMIME may take it. */
  readonly eightBit?: boolean;
  /** Every line end of the message is CRLF (checked at intake): its dot-stuffing need not look for bare ones. */
  readonly crlfOnly?: boolean;
  /** The Message-ID header's value, as it goes out: what the platform knows the message by. */
  readonly messageId?: string;
  /** Held by hand (the console, `tenant-relay queue hold`): not attempted, nor expired, until released. */
  readonly onHold?: { readonly since: number };
}

export function isQueuedMessage(value: unknown): value is QueuedMessage {
  if (!value || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    v.v === 1 &&
    typeof v.id === 'string' &&
    /^[a-z0-9]+$/.test(v.id) &&
    typeof v.createdAt === 'number' &&
    typeof v.mailFrom === 'string' &&
    (v.tenant === null || typeof v.tenant === 'string') &&
    typeof v.size === 'number' &&
    typeof v.attempts === 'number' &&
    typeof v.nextAttemptAt === 'number' &&
    Array.isArray(v.recipients) &&
    v.recipients.length > 0 &&
    v.recipients.every(
      (r: unknown) =>
        !!r &&
        typeof (r as QueuedRecipient).address === 'string' &&
        ['pending', 'sent', 'failed', 'suppressed'].includes((r as QueuedRecipient).status),
    )
  );
}

export const pendingRecipients = (e: QueuedMessage) => e.recipients.filter((r) => r.status === 'pending').map((r) => r.address);

/** The message, as its outcomes name it. */
export function factsOf(entry: QueuedMessage): MessageFacts {
  return { id: entry.id, tenant: entry.tenant, mode: 'queue', mailFrom: entry.mailFrom, acceptedAt: entry.createdAt, ...messageIdOf(entry), ...(entry.dsn ? { dsn: true } : {}) };
}
