// Hands one message to an SMTP upstream through its pool, under a deadline, and reports per recipient.
import { createReadStream } from 'node:fs';
import { pipeline, Readable, Transform } from 'node:stream';
import type { SmtpUpstream } from '../../config/types.js';
import { releaseChunks } from '../ops/memory.js';
import type { DeliveryResult, Envelope, MessageSource, RecipientOutcome } from '../types.js';
import { isInMemory, partsOf } from '../message-bytes.js';
import { outcomesFromError, outcomesFromInfo } from './classify.js';
import { sendThroughPool } from './nodemailer-seams.js';
import type { UpstreamPools } from './pools.js';

export async function sendViaSmtp(pools: UpstreamPools, upstream: SmtpUpstream, envelope: Envelope, message: MessageSource): Promise<DeliveryResult> {
  const most = upstream.recipientsPerMessage;
  if (most === undefined || envelope.rcptTo.length <= most) return sendTransaction(pools, upstream, envelope, message);
  // Past the server's recipients per message (Microsoft 365's 500) it refuses the rest: several
  // transactions instead, one after another, each reported per recipient like one.
  const outcomes: RecipientOutcome[] = [];
  for (let i = 0; i < envelope.rcptTo.length; i += most) {
    const part = await sendTransaction(pools, upstream, { mailFrom: envelope.mailFrom, rcptTo: envelope.rcptTo.slice(i, i + most) }, message);
    outcomes.push(...part.outcomes);
  }
  return { upstream: upstream.name, outcomes };
}

async function sendTransaction(pools: UpstreamPools, upstream: SmtpUpstream, envelope: Envelope, message: MessageSource): Promise<DeliveryResult> {
  if (upstream.auth?.kind === 'oauth2') {
    // The token first (from the cache, almost always), before any connection: a slow or refusing token
    // endpoint is then reported as itself, not as the upstream's idle timeout while the relay waited at AUTH.
    const failed = await pools.tokens(upstream, false).then(
      () => undefined,
      (err: Error) => err,
    );
    if (failed) return { upstream: upstream.name, outcomes: outcomesFromError(upstream.name, envelope.rcptTo, failed) };
  }
  const first = await sendOnce(pools, upstream, envelope, message);
  // Microsoft 365 answers an expired or revoked token with a plain 535 (no 334 challenge), and nodemailer
  // then gives up without asking for another: drop the token and try once more, on a new connection.
  if (upstream.auth?.kind === 'oauth2' && first.authRefused) {
    await pools.tokens(upstream, true).catch(() => undefined);
    return (await sendOnce(pools, upstream, envelope, message)).result;
  }
  return first.result;
}

async function sendOnce(pools: UpstreamPools, upstream: SmtpUpstream, envelope: Envelope, message: MessageSource): Promise<{ result: DeliveryResult; authRefused: boolean }> {
  const transport = pools.get(upstream);
  // socketTimeout only covers silence; this bounds the whole send, however slowly the upstream drips.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`no answer within ${upstream.timeoutMs} ms`)), upstream.timeoutMs);
  // Whether a try handed the whole message over: a failure after that may have left it with the upstream.
  let streamed = false;
  try {
    const info = await sendThroughPool(transport, envelope, () => streamOf(message), deadline.signal, () => {
      streamed = true;
    });
    return { result: { upstream: upstream.name, outcomes: outcomesFromInfo(upstream.name, envelope.rcptTo, info) }, authRefused: false };
  } catch (err) {
    const e = err as Error & { code?: string; originalCode?: string; responseCode?: number };
    const authRefused = e.code === 'EAUTH' && e.originalCode !== 'ETOKEN' && e.responseCode !== undefined;
    return { result: { upstream: upstream.name, outcomes: outcomesFromError(upstream.name, envelope.rcptTo, e, { streamed }) }, authRefused };
  } finally {
    clearTimeout(timer);
  }
}

/** A fresh stream of the message for each try: its bytes or a file, never a one-shot stream. */
function streamOf(source: MessageSource): Readable {
  if (isInMemory(source)) {
    // A Readable of the parts, not a PassThrough written to: a Duplex costs four times as much to set up
    // (about 7 us against 2 here), and this is once a message.
    const parts = partsOf(source);
    return new Readable({
      read() {
        for (const part of parts) this.push(part);
        this.push(null);
      },
    });
  }
  const stream = countedFileStream(source.path);
  if (source.prefix) stream.unshift(source.prefix);
  return stream;
}

/** A file's bytes as a stream whose chunks are counted toward releasing them (see ops/memory.ts). */
function countedFileStream(file: string): Readable {
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      releaseChunks(chunk.length);
      done(null, chunk);
    },
  });
  // pipeline, not pipe: a read error must reach the pool as an error on the stream it reads.
  pipeline(createReadStream(file), counted, () => {});
  return counted;
}
