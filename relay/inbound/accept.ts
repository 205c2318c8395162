// Queue mode, after the intake: the message is committed to the spool (fsynced) before the client hears
// 250, then handed to the scheduler. Any failure on that path: 451, nothing queued. The bookkeeping of an
// accepted message (trace, log line, metrics, events) waits until the 250 is written: at one message per
// connection the client waits for nothing but the disk.
import type { Readable } from 'node:stream';
import type { DiskSpace } from '../disk-space.js';
import { Replies, type SmtpReply } from '../errors.js';
import { messageIdOf, type Outcomes } from '../observe/outcomes.js';
import type { Scheduler } from '../queue/scheduler.js';
import type { Spool } from '../queue/spool.js';
import type { PlatformTenants } from '../tenancy/platform-tenants.js';
import { intake, type Transaction } from './intake.js';
import type { Staging } from './staging.js';

export interface QueueIntakeDeps {
  readonly staging: Staging;
  /** Told what was written, so intake stops before the volume is full. */
  readonly disk: DiskSpace;
  readonly spool: Spool;
  readonly scheduler: Scheduler;
  readonly outcomes: Outcomes;
  /** The platform's tenants: the owner of a header From only they know. */
  readonly platform?: () => PlatformTenants | undefined;
}

/** What the client hears, and what the log is told. */
export interface QueueAnswer {
  readonly reply: SmtpReply;
  /** Why it was refused, for the log; absent when queued. */
  readonly reason?: string;
  readonly warnings: readonly string[];
  /** Tells the outcomes the message was accepted: called once the client has its reply. */
  readonly report?: () => void;
}

export async function acceptToQueue(data: Readable, tx: Transaction, deps: QueueIntakeDeps): Promise<QueueAnswer> {
  const received = await intake(data, tx, deps.staging, deps.platform?.());
  if (received.kind === 'refused') return { reply: received.reply, reason: received.reason, warnings: [] };
  const { message } = received;
  const now = Date.now();
  try {
    const entry = await deps.spool.commit(
      {
        v: 1,
        id: tx.id,
        createdAt: now,
        mailFrom: tx.envelope.mailFrom,
        tenant: tx.decision.tenant?.id ?? null,
        recipients: tx.envelope.rcptTo.map((address) => ({ address, status: 'pending' })),
        attempts: 0,
        nextAttemptAt: now,
        ...(message.eightBit ? { eightBit: true } : {}),
        ...(message.crlfOnly ? { crlfOnly: true } : {}),
        ...(message.messageId ? { messageId: message.messageId } : {}),
      },
      // In memory: the journal, sharing its fsync with those that arrive with it; else files of its own.
      message.bytes ?? message.parts,
    );
    deps.disk.written(entry.size);
    deps.disk.accepted(entry.size, entry.recipients.length);
    // Its first attempt sends these same bytes without reading them back.
    deps.scheduler.add(entry, message.bytes);
    // Before the first attempt can start: the scheduler starts attempts on a later turn of the event loop.
    const report = () =>
      deps.outcomes.emit('accepted', {
        message: { id: tx.id, tenant: entry.tenant, mode: 'queue', mailFrom: tx.envelope.mailFrom, acceptedAt: now, ...messageIdOf(message) },
        envelope: tx.envelope,
        header: message.head,
        size: entry.size,
        decision: tx.decision.reason,
      });
    return { reply: Replies.queued(tx.id), warnings: message.warnings, report };
  } catch (err) {
    return { reply: Replies.localError, reason: `spool: ${(err as Error).message}`, warnings: [] };
  } finally {
    await message.release();
  }
}
