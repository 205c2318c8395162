// Pass-through: the message is forwarded while the client waits, and the upstream's answer, per
// recipient, decides what the client hears (passthrough-reply.ts). Nothing is queued. A message up to
// 1 MiB is handled in memory; a larger one is staged in the spool's tmp/ (never held whole in memory)
// and removed once the upstream has answered.
import { performance } from 'node:perf_hooks';
import type { SMTPServerDataStream } from 'smtp-server';
import type { Config } from '../../config/types.js';
import { deliver, type MessageSource } from '../delivery/deliver.js';
import { formatReply, Replies, type SmtpReply } from '../errors.js';
import { prepareMessage } from '../message/transform.js';
import { sendTestToken } from '../ops/send-tests.js';
import type { TraceInfo } from '../message/trace.js';
import type { Received } from '../queue/spool.js';
import type { Envelope, RouteDecision } from '../types.js';
import { type DataSummary, readData } from './data.js';
import { KEEP_IN_MEMORY_BYTES, messageParts } from './message-parts.js';
import { passthroughReply } from './passthrough-reply.js';
import type { InboundDeps } from './server.js';

export async function forwardInSession(
  stream: SMTPServerDataStream,
  envelope: Envelope,
  decision: RouteDecision,
  config: Config,
  trace: TraceInfo,
  deps: InboundDeps,
  log: Record<string, unknown>,
  started: number,
): Promise<SmtpReply> {
  const limit = config.maxMessageSizeBytes;
  const summary: DataSummary = { received: 0, bareLineEndings: false, eightBit: false };
  let received: Received;
  try {
    received = await deps.spool.receive(trace.id, readData(stream, limit, config.inbound.bareLineEndings, summary), KEEP_IN_MEMORY_BYTES);
  } catch {
    // The client left before the final dot: it will not hear this, and nothing was sent.
    return Replies.clientAborted;
  }
  const staged: string[] = received.kind === 'file' ? [received.path] : [];
  try {
    if (received.kind === 'failed') {
      deps.logger.error({ event: 'refused', ...log, id: trace.id, reason: `staging a large message failed: ${(received.error as Error).message}` });
      return Replies.localError;
    }
    if (summary.received > limit || stream.sizeExceeded) return Replies.messageTooBig(limit);
    if (summary.bareLineEndings && config.inbound.bareLineEndings === 'reject') return Replies.bareLineEndings;
    const parts = await messageParts(received);
    if (!parts) return Replies.headerTooLarge;
    const prepared = await prepareMessage(parts.header, parts.body, decision, config, trace);
    if (prepared.kind !== 'ok') {
      deps.logger.info({ event: 'refused', ...log, id: trace.id, reason: prepared.reason, reply: formatReply(prepared.reply) });
      return prepared.reply;
    }
    for (const warning of prepared.warnings) deps.logger.warn({ event: 'message-warning', ...log, id: trace.id, warning });
    let source: MessageSource;
    let bytes: number;
    if (Buffer.isBuffer(parts.body)) {
      source = Buffer.concat([prepared.head, parts.body]);
      bytes = source.length;
    } else {
      // The upstream may need it twice (a pool resends on another connection): a file, not a stream.
      const written = await deps.spool.writeTemp(`${trace.id}.out`, [prepared.head, parts.bodyFile ?? parts.body()]);
      staged.push(written.path);
      source = { path: written.path };
      bytes = written.size;
    }

    const sendStarted = performance.now();
    const result = await deliver(deps.edge, decision.route.upstream, envelope, { source, eightBit: summary.eightBit }, config.upstreamHosts);
    deps.metrics.recordDelivery(decision.tenant?.id ?? null, result, (performance.now() - sendStarted) / 1000);
    const reply = passthroughReply(result);
    const token = sendTestToken(prepared.head);
    if (token) {
      deps.sendTests.record(token, {
        tenant: decision.tenant?.id ?? null,
        upstream: result.upstream,
        recipients: result.outcomes.map((o) => ({ rcpt: o.recipient, status: o.status, reply: formatReply(o.reply) })),
        headers: prepared.head.toString('latin1'),
        final: true,
      });
    }
    if (reply.code === 250) deps.metrics.accepted.inc({ tenant: decision.tenant?.id ?? 'none', mode: 'passthrough' });
    deps.logger.info({
      event: 'message',
      ...log,
      id: trace.id,
      envelopeFrom: envelope.mailFrom,
      upstream: result.upstream,
      dkim: decision.dkim.kind === 'sign' && prepared.warnings.length === 0,
      recipients: result.outcomes.map((o) => ({ rcpt: o.recipient, status: o.status, reply: `${o.reply.code} ${o.reply.enhanced}` })),
      bytes,
      reply: formatReply(reply),
      ms: Math.round(performance.now() - started),
    });
    return reply;
  } finally {
    await deps.spool.discardStaged(staged);
  }
}
