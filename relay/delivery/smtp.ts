// Hands one message to an SMTP upstream through its pool, under a deadline, and reports per recipient.
import type { SmtpUpstream } from '../../config/types.js';
import type { DeliveryResult, Envelope } from '../types.js';
import type { MessageSource } from './deliver.js';
import { outcomesFromError, outcomesFromInfo } from './classify.js';
import type { UpstreamPools } from './pools.js';

export async function sendViaSmtp(pools: UpstreamPools, upstream: SmtpUpstream, envelope: Envelope, message: MessageSource): Promise<DeliveryResult> {
  const transport = pools.get(upstream);
  // socketTimeout only covers silence; this bounds the whole send, however slowly the upstream drips.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`no answer within ${upstream.timeoutMs} ms`)), upstream.timeoutMs);
  try {
    const info = await transport.sendMail({
      envelope: { from: envelope.mailFrom, to: [...envelope.rcptTo] },
      // A Buffer or a file path, never a one-shot stream: the pool may resend it over another connection.
      raw: Buffer.isBuffer(message) ? message : { path: message.path },
      signal: deadline.signal,
    });
    return { upstream: upstream.name, outcomes: outcomesFromInfo(upstream.name, envelope.rcptTo, info) };
  } catch (err) {
    return { upstream: upstream.name, outcomes: outcomesFromError(upstream.name, envelope.rcptTo, err as Error) };
  } finally {
    clearTimeout(timer);
  }
}
