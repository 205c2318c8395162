// Hands one message to an SMTP upstream through its pool, under a deadline, and reports per recipient.
import { createReadStream } from 'node:fs';
import { pipeline, type Readable, Transform } from 'node:stream';
import type { SmtpUpstream } from '../../config/types.js';
import { releaseChunks } from '../ops/memory.js';
import type { DeliveryResult, Envelope, MessageSource, RecipientOutcome } from '../types.js';
import { isInMemory, partsOf } from '../message-bytes.js';
import { outcomesFromError, outcomesFromInfo } from './classify.js';
import { type OutgoingBody, type SmtpClientConnection, UpstreamError } from './smtp-client.js';
import type { UpstreamPools } from './pools.js';

/** What the client declares of the message and how it stuffs it (OutgoingBody without its bytes). */
export type BodyTraits = Omit<OutgoingBody, 'bytes'>;

/**
 * `traits.eightBit`: a byte of the message is over 127 (declared as BODY=8BITMIME to a server that offers it).
 * `traits.crlfOnly`: every line end of the message is CRLF, checked before (the dot-stuffing then looks only for dots).
 */
export async function sendViaSmtp(pools: UpstreamPools, upstream: SmtpUpstream, envelope: Envelope, message: MessageSource, traits: BodyTraits = { eightBit: false }): Promise<DeliveryResult> {
  const most = upstream.recipientsPerMessage;
  if (most === undefined || envelope.rcptTo.length <= most) return sendTransaction(pools, upstream, envelope, message, traits);
  // Past the server's recipients per message (Microsoft 365's 500) it refuses the rest: several
  // transactions instead, one after another, each reported per recipient like one.
  const outcomes: RecipientOutcome[] = [];
  for (let i = 0; i < envelope.rcptTo.length; i += most) {
    const part = await sendTransaction(pools, upstream, { mailFrom: envelope.mailFrom, rcptTo: envelope.rcptTo.slice(i, i + most) }, message, traits);
    outcomes.push(...part.outcomes);
  }
  return { upstream: upstream.name, outcomes };
}

async function sendTransaction(pools: UpstreamPools, upstream: SmtpUpstream, envelope: Envelope, message: MessageSource, traits: BodyTraits): Promise<DeliveryResult> {
  if (upstream.auth?.kind === 'oauth2') {
    // The token first (from the cache, almost always), before any connection: a slow or refusing token
    // endpoint is then reported as itself, not as the upstream's idle timeout while the relay waited at AUTH.
    const failed = await pools.tokens(upstream, false).then(
      () => undefined,
      (err: Error) => err,
    );
    if (failed) return { upstream: upstream.name, outcomes: outcomesFromError(upstream.name, envelope.rcptTo, failed) };
  }
  const first = await sendOnce(pools, upstream, envelope, message, traits);
  // Microsoft 365 answers an expired or revoked token with a plain 535 (no 334 challenge, which the login
  // would renew by itself): drop the token and try once more, on a new connection.
  if (upstream.auth?.kind === 'oauth2' && first.authRefused) {
    await pools.tokens(upstream, true).catch(() => undefined);
    return (await sendOnce(pools, upstream, envelope, message, traits)).result;
  }
  return first.result;
}

async function sendOnce(pools: UpstreamPools, upstream: SmtpUpstream, envelope: Envelope, message: MessageSource, traits: BodyTraits): Promise<{ result: DeliveryResult; authRefused: boolean }> {
  const pool = pools.get(upstream);
  // The socket's timeout only covers silence; this bounds the whole send, however slowly the upstream drips.
  let timer: NodeJS.Timeout | undefined;
  let connection: SmtpClientConnection | undefined;
  let late: UpstreamError | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = new UpstreamError(`no answer within ${upstream.timeoutMs} ms`, 'ETIMEDOUT');
      connection?.destroy(late);
      reject(late);
    }, upstream.timeoutMs);
  });
  // Whether a try handed the whole message over: a failure after that may have left it with the upstream.
  let streamed = false;
  try {
    const info = await Promise.race([
      pool.run((c) => {
        // A connection that came after the deadline (waited for, or slow to open) carries nothing: the
        // message was already reported as not sent.
        if (late) throw late;
        connection = c;
        return c.send(envelope, { bytes: bodyOf(message), ...traits }, () => {
          streamed = true;
        });
      }),
      deadline,
    ]);
    return { result: { upstream: upstream.name, outcomes: outcomesFromInfo(upstream.name, envelope.rcptTo, info) }, authRefused: false };
  } catch (err) {
    const e = err as Error & { code?: string; originalCode?: string; responseCode?: number };
    const authRefused = e.code === 'EAUTH' && e.originalCode !== 'ETOKEN' && e.responseCode !== undefined;
    return { result: { upstream: upstream.name, outcomes: outcomesFromError(upstream.name, envelope.rcptTo, e, { streamed }) }, authRefused };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The message's bytes for one try: its parts in memory, or a fresh read of its file, opened only once
 * the upstream took the envelope (a refused envelope leaves no file open).
 */
function bodyOf(source: MessageSource): OutgoingBody['bytes'] {
  if (isInMemory(source)) return partsOf(source);
  return () => {
    const stream = countedFileStream(source.path);
    if (source.prefix) stream.unshift(source.prefix);
    return stream;
  };
}

/** A file's bytes as a stream whose chunks are counted toward releasing them (see ops/memory.ts). */
function countedFileStream(file: string): Readable {
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      releaseChunks(chunk.length);
      done(null, chunk);
    },
  });
  // pipeline, not pipe: a read error must reach the client as an error of the stream it reads.
  pipeline(createReadStream(file), counted, () => {});
  return counted;
}
