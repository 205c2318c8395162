// Pass-through: the message is forwarded while the client waits, and the upstream's answer, per
// recipient, decides what the client hears (passthrough-reply.ts). Nothing is stored.
import { performance } from 'node:perf_hooks';
import type { SMTPServerDataStream } from 'smtp-server';
import type { Config } from '../../config/types.js';
import { deliver } from '../delivery/deliver.js';
import { formatReply, Replies, type SmtpReply } from '../errors.js';
import { splitMessage } from '../message/split.js';
import { transformMessage } from '../message/transform.js';
import { sendTestToken } from '../ops/send-tests.js';
import type { TraceInfo } from '../message/trace.js';
import type { Envelope, RouteDecision } from '../types.js';
import { collectMessage } from './collect.js';
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
  let collected: Awaited<ReturnType<typeof collectMessage>>;
  try {
    collected = await collectMessage(stream, config.maxMessageSizeBytes, config.inbound.bareLineEndings);
  } catch {
    // The client left before the final dot: it will not hear this, and nothing was sent.
    return Replies.clientAborted;
  }
  if (collected.kind === 'too-big') return Replies.messageTooBig(config.maxMessageSizeBytes);
  if (collected.bareLineEndings && config.inbound.bareLineEndings === 'reject') return Replies.bareLineEndings;
  const transformed = await transformMessage(collected.bytes, decision, config, trace);
  if (transformed.kind === 'refuse') {
    deps.logger.info({ event: 'refused', ...log, id: trace.id, reason: transformed.reason, reply: formatReply(transformed.reply) });
    return transformed.reply;
  }
  for (const warning of transformed.warnings) deps.logger.warn({ event: 'message-warning', ...log, id: trace.id, warning });
  const message = { source: transformed.bytes, eightBit: collected.eightBit };
  const sendStarted = performance.now();
  const result = await deliver(deps.edge, decision.route.upstream, envelope, message, config.upstreamHosts);
  deps.metrics.recordDelivery(decision.tenant?.id ?? null, result, (performance.now() - sendStarted) / 1000);
  const reply = passthroughReply(result);
  const sentHeader = splitMessage(transformed.bytes).header;
  const token = sendTestToken(sentHeader);
  if (token) {
    deps.sendTests.record(token, {
      tenant: decision.tenant?.id ?? null,
      upstream: result.upstream,
      recipients: result.outcomes.map((o) => ({ rcpt: o.recipient, status: o.status, reply: formatReply(o.reply) })),
      headers: sentHeader.toString('latin1'),
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
    dkim: decision.dkim.kind === 'sign' && transformed.warnings.length === 0,
    recipients: result.outcomes.map((o) => ({ rcpt: o.recipient, status: o.status, reply: `${o.reply.code} ${o.reply.enhanced}` })),
    bytes: transformed.bytes.length,
    reply: formatReply(reply),
    ms: Math.round(performance.now() - started),
  });
  return reply;
}
