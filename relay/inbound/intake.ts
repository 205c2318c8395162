// The intake of one message, the same for both delivery modes. In the order it runs:
//   1. receive    DATA is staged: in memory up to 1 MiB, else in a temp file (staging.ts); checked as it
//                 streams for size, bare CR/LF/NUL and 8-bit bytes (data.ts). A client gone before its
//                 final dot: nothing happens, nobody to tell.
//   2. too big    past maxMessageSizeBytes: 552 (the client was read to its dot first).
//   3. line ends  a bare CR, bare LF or NUL: 550, or already repaired (inbound.bareLineEndings).
//   4. header     the header block split off (over 1 MiB: 552); the body is never parsed.
//   5. From       the owner of the header From, asked of the platform when only it can say (header-from.ts).
//   6. prepare    the message stage checks the From, rewrites the header block and signs (message/transform.ts).
// It returns the prepared message or the reply that refuses it. What happens next differs by mode:
// accept.ts (queue) and passthrough.ts.
import type { Readable } from 'node:stream';
import type { Config } from '../../config/types.js';
import { Replies, type SmtpReply } from '../errors.js';
import type { Part } from '../files.js';
import type { TransactionFacts } from '../observe/outcomes.js';
import type { TraceInfo } from '../message/trace.js';
import { prepareHead } from '../message/transform.js';
import { crlfOnly } from '../line-ends.js';
import { joinedIfSmall, partsOf } from '../message-bytes.js';
import type { Envelope, MessageBytes, RouteDecision } from '../types.js';
import { type DataSummary, readData } from './data.js';
import { KEEP_IN_MEMORY_BYTES, messageParts } from './message-parts.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';
import { withHeaderFromOwner } from './header-from.js';
import type { Staging } from './staging.js';

/** One accepted mail transaction, from MAIL FROM to the final dot: everything the rest of its path needs. */
export interface Transaction {
  /** The message's id: in the reply, the logs, the Received header and the spool. */
  readonly id: string;
  /** The snapshot in force at MAIL FROM: the message is rewritten and signed under it. */
  readonly config: Config;
  readonly decision: RouteDecision;
  /** The envelope as it goes out (MAIL FROM rewritten when the tenant asks). */
  readonly envelope: Envelope;
  readonly trace: TraceInfo;
  /** The fields every log line about this message carries. */
  readonly log: TransactionFacts;
  /** performance.now() when DATA began. */
  readonly startedAt: number;
}

export interface PreparedMessage {
  /** DKIM-Signature lines (or nothing), then the rewritten header block: the body follows unchanged. */
  readonly head: Buffer;
  /** The whole message (head, then body), when it was small enough to be held in memory. */
  readonly bytes?: MessageBytes;
  /** Otherwise, the message as parts to write: the head, then the body's bytes in the staged file. */
  readonly parts: readonly Part[];
  readonly eightBit: boolean;
  /** Every line end is CRLF: no bare CR or LF reached the body (the guard saw none), nor the head written here. */
  readonly crlfOnly: boolean;
  readonly messageId?: string;
  readonly warnings: readonly string[];
  /** Removes what was staged for it. Call once the message is committed or forwarded. */
  release(): Promise<void>;
}

export type Intake = { readonly kind: 'prepared'; readonly message: PreparedMessage } | { readonly kind: 'refused'; readonly reply: SmtpReply; readonly reason: string };

const refused = (reply: SmtpReply, reason: string): Intake => ({ kind: 'refused', reply, reason });

export async function intake(data: Readable, tx: Transaction, staging: Staging, platform?: PlatformTenants): Promise<Intake> {
  const { config } = tx;
  const limit = config.maxMessageSizeBytes;
  const summary: DataSummary = { received: 0, bareLineEndings: false, eightBit: false };
  let received;
  try {
    received = await staging.receive(tx.id, readData(data, limit, config.inbound.bareLineEndings, summary), KEEP_IN_MEMORY_BYTES);
  } catch {
    return refused(Replies.clientAborted, 'client left during DATA');
  }
  const staged = received.kind === 'file' ? [received.path] : [];
  const release = () => staging.discard(staged);
  const refuse = async (reply: SmtpReply, reason: string) => {
    await release();
    return refused(reply, reason);
  };
  if (received.kind === 'failed') return refuse(Replies.localError, `staging: ${(received.error as Error).message}`);
  if (summary.received > limit) return refuse(Replies.messageTooBig(limit), 'too big');
  if (summary.bareLineEndings && config.inbound.bareLineEndings === 'reject') return refuse(Replies.bareLineEndings, 'bare CR, LF or NUL in DATA');
  const parts = await messageParts(received);
  if (!parts) return refuse(Replies.headerTooLarge, 'header section over 1 MiB');
  const decision = await withHeaderFromOwner(parts.header, tx.decision, platform);
  const prepared = await prepareHead(parts.header, parts.body, decision, config, tx.trace);
  if (prepared.kind !== 'ok') return refuse(prepared.reply, prepared.reason);
  const { head } = prepared;
  const common = { head, eightBit: summary.eightBit, crlfOnly: !summary.bareLineEndings && crlfOnly(head, false), ...(prepared.messageId ? { messageId: prepared.messageId } : {}), warnings: prepared.warnings, release };
  if ('bodyFile' in parts) return { kind: 'prepared', message: { ...common, parts: [head, parts.bodyFile] } };
  const bytes = joinedIfSmall([head, ...parts.body]);
  return { kind: 'prepared', message: { ...common, bytes, parts: partsOf(bytes) } };
}
