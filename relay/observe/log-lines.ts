// The per-message log lines, one subscriber of the outcomes: `refused` at MAIL FROM; at the end of DATA
// `queued`, `refused` or (pass-through) `message`, with any `message-warning`; per queued attempt
// `delivery-attempt` (or `held` when no upstream was asked) and `possible-duplicate`; then `deferred`,
// `delivered`, or `dsn-unsigned` and `bounced`. The README's Logs section lists them.
//
// Like every subscriber, made in the outcomes' batches (outcomes.ts): a line's `time` is when it is
// written, at most 20 ms after its outcome.
import { outcomeLog } from '../delivery/upstream-reply.js';
import { formatReply } from '../errors.js';
import type { Logger } from '../log.js';
import type { Outcomes } from './outcomes.js';

export function writeLogLines(outcomes: Outcomes, logger: Logger): void {
  outcomes.on('senderRefused', (e) => {
    const line = { event: 'refused', session: e.session, from: e.from, reason: e.reason, reply: formatReply(e.reply), replyId: e.reply.id };
    // The relay's own trouble (the tenant API, lookups over budget) is a warning; a decision is not.
    if (e.reply.code < 500) logger.warn(line);
    else logger.info(line);
  });

  outcomes.on('answered', (e) => {
    const reply = { reply: formatReply(e.reply), replyId: e.reply.id };
    if (e.mode === 'passthrough' && !e.forwarded) {
      logger.info({ event: 'refused', ...e.tx, reason: e.reason, ...reply, ms: e.ms });
      return;
    }
    for (const warning of e.warnings) logger.warn({ event: 'message-warning', ...e.tx, warning });
    const f = e.forwarded;
    if (f) {
      logger.info({ event: 'message', ...e.tx, envelopeFrom: f.envelopeFrom, upstream: f.upstream, dkim: f.signed, recipients: f.outcomes.map(outcomeLog), bytes: f.bytes, ...reply, ms: e.ms });
      return;
    }
    // A queued message's reply is its id (already the line's `id`): only a refusal's is written.
    if (e.reply.code === 250) logger.info({ event: 'queued', ...e.tx, ms: e.ms });
    else logger.info({ event: 'refused', ...e.tx, reason: e.reason, ...reply, ms: e.ms });
  });

  // Who did what to which message: the console's and the command's actions, each logged once.
  outcomes.on('handled', (e) => {
    logger.info({ event: HANDLED_EVENT[e.action], id: e.message.id, tenant: e.message.tenant, by: e.by, recipients: e.recipients.length });
  });
  outcomes.on('paced', (e) => {
    logger.warn({ event: 'provider-pacing', upstream: e.upstream, tenant: e.tenant, signal: e.signal, inARow: e.level + 1, heardBy: e.heardBy, until: new Date(e.until).toISOString() }, e.reason);
  });
  // The attempt that finishes a message waits for how it settled: delivered, it is one `delivered` line
  // with the attempt in it (one line a message fewer, in the common case); else its own line first.
  const finishing = new Map<string, Record<string, unknown>>();
  const flushAttempt = (id: string) => {
    const line = finishing.get(id);
    finishing.delete(id);
    if (line) logger.info(line);
  };
  outcomes.on('attempted', (e) => {
    // A pass-through attempt is in its `message` line.
    if (e.message.mode !== 'queue') return;
    const line = { id: e.message.id, tenant: e.message.tenant, upstream: e.upstream, attempt: e.attempt, ms: Math.round(e.ms) };
    const attemptLine = { event: e.tried ? 'delivery-attempt' : 'held', ...line, recipients: e.outcomes.map(outcomeLog) };
    if (e.final && e.tried) {
      // Bounded: a message whose settling never came (its spool write failed) is logged as it was.
      for (const id of finishing.keys()) {
        if (finishing.size < MAX_FINISHING) break;
        flushAttempt(id);
      }
      finishing.set(e.message.id, attemptLine);
    } else logger.info(attemptLine);
    if (e.outcomes.some((o) => o.mayHaveArrived)) logger.warn({ event: 'possible-duplicate', ...line }, 'connection lost or timed out after the message went out; the retry may deliver twice');
  });

  outcomes.on('settled', (e) => {
    const { id, tenant } = e.message;
    const attempt = finishing.get(id);
    if (e.state === 'delivered' && attempt) {
      finishing.delete(id);
      // `recipients` stays the count, as in every `delivered` line; the attempt's replies are `outcomes`.
      const { recipients: outcomes, attempt: _attempt, event: _event, ...rest } = attempt;
      logger.info({ event: 'delivered', ...rest, recipients: e.recipients, attempts: e.attempt, outcomes });
      return;
    }
    flushAttempt(id);
    switch (e.state) {
      case 'deferred':
        logger.info({ event: 'deferred', id, tenant, upstream: e.upstream, attempt: e.attempt, ms: Math.round(e.ms), pending: e.pending, nextAttemptAt: new Date(e.nextAttemptAt).toISOString() });
        return;
      case 'delivered':
        logger.info({ event: 'delivered', id, tenant, recipients: e.recipients, attempts: e.attempt });
        return;
      case 'failed':
        if (e.dsnUnsigned !== undefined) logger.warn({ event: 'dsn-unsigned', id, err: e.dsnUnsigned }, 'the DSN could not be DKIM-signed; it goes unsigned');
        for (const r of e.failed) logger.warn({ event: 'bounced', id, tenant, rcpt: r.address, reply: r.reply, dsn: e.bounced });
    }
  });
}

/** Finishing attempts waiting for their message's settling, at most. */
const MAX_FINISHING = 10_000;

const HANDLED_EVENT = { retry: 'queue-retried', delete: 'queue-deleted', hold: 'queue-held', release: 'queue-released' } as const;
