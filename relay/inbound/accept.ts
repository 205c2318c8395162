// Queue mode: the message is on disk, in the spool, before the client hears 250. DATA is kept in memory
// up to 1 MiB and streams to a temp file past that (a large message never sits whole in memory), the
// header block is rewritten and signed, the body is copied as bytes, and the spool commits (the journal's
// shared fsync for a message in memory; for a large one its own files, fsync, rename, directory fsync).
// Any failure: 451, nothing queued.
import type { Readable } from 'node:stream';
import { Replies, type SmtpReply } from '../errors.js';
import { type DataSummary, readData } from './data.js';
import { KEEP_IN_MEMORY_BYTES, messageParts } from './message-parts.js';
import { prepareMessage } from '../message/transform.js';
import type { TraceInfo } from '../message/trace.js';
import { sendTestToken } from '../ops/send-tests.js';
import type { QueuedMessage } from '../queue/entry.js';
import type { Scheduler } from '../queue/scheduler.js';
import type { Received, Spool } from '../queue/spool.js';
import type { Config } from '../../config/types.js';
import type { Envelope, RouteDecision } from '../types.js';

export interface Accepted {
  readonly reply: SmtpReply;
  /** Why it was refused, for the log; absent when queued. */
  readonly reason?: string;
  readonly warnings: readonly string[];
}

export async function acceptToQueue(
  data: Readable,
  envelope: Envelope,
  decision: RouteDecision,
  config: Config,
  trace: Omit<TraceInfo, 'id'>,
  spool: Spool,
  scheduler: Scheduler,
): Promise<Accepted> {
  const id = spool.newId();
  const limit = config.maxMessageSizeBytes;
  const summary: DataSummary = { received: 0, bareLineEndings: false, eightBit: false };
  let received: Received | undefined;
  try {
    try {
      received = await spool.receive(id, readData(data, limit, config.inbound.bareLineEndings, summary), KEEP_IN_MEMORY_BYTES);
    } catch {
      // The client left before the final dot: nothing queued, and nobody to tell.
      return { reply: Replies.clientAborted, reason: 'client left during DATA', warnings: [] };
    }
    if (received.kind === 'failed') return { reply: Replies.localError, reason: `spool: ${(received.error as Error).message}`, warnings: [] };
    if (summary.received > limit) return { reply: Replies.messageTooBig(limit), reason: 'too big', warnings: [] };
    if (summary.bareLineEndings && config.inbound.bareLineEndings === 'reject') {
      return { reply: Replies.bareLineEndings, reason: 'bare CR, LF or NUL in DATA', warnings: [] };
    }

    // Only the header block is parsed; the body goes to the spool as the bytes that arrived.
    const parts = await messageParts(received);
    if (!parts) return { reply: Replies.headerTooLarge, reason: 'header section over 1 MiB', warnings: [] };
    const { header, body } = parts;
    const prepared = await prepareMessage(header, body, decision, config, { ...trace, id });
    if (prepared.kind !== 'ok') return { reply: prepared.reply, reason: prepared.reason, warnings: [] };

    const testToken = sendTestToken(header);
    const now = Date.now();
    const entryOf = (size: number): QueuedMessage => ({
      v: 1,
      id,
      createdAt: now,
      mailFrom: envelope.mailFrom,
      tenant: decision.tenant?.id ?? null,
      size,
      recipients: envelope.rcptTo.map((address) => ({ address, status: 'pending' })),
      attempts: 0,
      nextAttemptAt: now,
      ...(summary.eightBit ? { eightBit: true } : {}),
      ...(testToken ? { sendTest: testToken } : {}),
    });
    let entry: QueuedMessage;
    let bytes: Buffer | undefined;
    if (Buffer.isBuffer(body)) {
      // A message in memory goes to the journal, sharing its fsync with those that arrive with it; its
      // first attempt sends these same bytes without reading them back.
      bytes = Buffer.concat([prepared.head, body]);
      entry = entryOf(bytes.length);
      await spool.commitInMemory(entry, bytes);
    } else {
      entry = entryOf(await spool.writeMessage(id, [prepared.head, parts.bodyFile ?? body()]));
      await spool.commit(entry);
    }
    scheduler.add(entry, bytes);
    return { reply: Replies.queued(id), warnings: prepared.warnings };
  } catch (err) {
    return { reply: Replies.localError, reason: `spool: ${(err as Error).message}`, warnings: [] };
  } finally {
    if (received?.kind === 'file') await spool.discardStaged([received.path]);
  }
}
