// Hands one message to an SMTP upstream through its pool, under a deadline, and reports per recipient.
//
// The message goes to the pool's own send(), not through transport.sendMail(): sendMail builds a MIME
// tree around even a raw message (a Message-ID drawn from the system's random source, header parsing,
// address parsing), which the profile showed as the largest single cost of relaying a message, and
// the relay needs none of it: the bytes are final. This uses the pool's documented-by-type send(mail,
// callback) with the few fields it reads (nodemailer 10.6; re-run the delivery tests when upgrading).
import { createReadStream } from 'node:fs';
import { PassThrough, pipeline, type Readable, Transform } from 'node:stream';
import { releaseChunks } from '../message/chunk-release.js';
import type { SmtpUpstream } from '../../config/types.js';
import type { DeliveryResult, Envelope } from '../types.js';
import type { MessageSource } from './deliver.js';
import { outcomesFromError, outcomesFromInfo } from './classify.js';
import type { PooledTransport, UpstreamPools } from './pools.js';

type PoolMail = Parameters<PooledTransport['transporter']['send']>[0];
type PoolInfo = NonNullable<Parameters<Parameters<PooledTransport['transporter']['send']>[1]>[1]>;

export async function sendViaSmtp(pools: UpstreamPools, upstream: SmtpUpstream, envelope: Envelope, message: MessageSource): Promise<DeliveryResult> {
  const transport = pools.get(upstream);
  // socketTimeout only covers silence; this bounds the whole send, however slowly the upstream drips.
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`no answer within ${upstream.timeoutMs} ms`)), upstream.timeoutMs);
  try {
    const info = await new Promise<PoolInfo>((resolve, reject) => {
      transport.transporter.send(poolMail(envelope, message, deadline.signal), (err, sent) => (err || !sent ? reject(err ?? new Error('no answer from the pool')) : resolve(sent)));
    });
    return { upstream: upstream.name, outcomes: outcomesFromInfo(upstream.name, envelope.rcptTo, info) };
  } catch (err) {
    return { upstream: upstream.name, outcomes: outcomesFromError(upstream.name, envelope.rcptTo, err as Error) };
  } finally {
    clearTimeout(timer);
  }
}

/** A file's bytes as a stream whose chunks are counted toward releasing them (see chunk-release.ts). */
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

/** What the pool reads of a message: its envelope and a fresh stream of its bytes for each try. */
function poolMail(envelope: Envelope, source: MessageSource, signal: AbortSignal): PoolMail {
  const mail = {
    data: { signal },
    message: {
      getEnvelope: () => ({ from: envelope.mailFrom, to: [...envelope.rcptTo] }),
      messageId: () => '',
      getHeader: () => '',
      // A Buffer or a file, never a one-shot stream: the pool may resend it over another connection.
      createReadStream: (): Readable => (Buffer.isBuffer(source) ? new PassThrough().end(source) : countedFileStream(source.path)),
    },
  };
  return mail as unknown as PoolMail;
}
