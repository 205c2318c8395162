// The three places where the relay uses nodemailer past its documented API, in one module, pinned to
// the version they were written against (package.json names it exactly) and checked at start:
//
// 1. A pool's own send(mail, callback) with a message object of ours. transport.sendMail() builds a MIME
//    tree around even a raw message (a random Message-ID, header and address parsing), which profiles
//    showed as the largest single cost of relaying; the relay's bytes are final and need none of it. The
//    pool reads only getEnvelope(), messageId(), getHeader() and createReadStream() of the message, and
//    `signal` of the data.
// 2. The extensions an upstream offered in EHLO (8BITMIME, SMTPUTF8): what nodemailer's own send()
//    consults, kept in `_supportedExtensions`.
// 3. The socket under a connection, for the TLS version and certificate that preflight reports.
// 4. The DataStream a connection pipes our message into (between the 354 and the final dot) stuffs
//    dots with a JavaScript test of every byte; that one stream (made for our message, reached through
//    our message stream's own pipe()) gets dot-stuffing.ts's transform, the same bytes found faster,
//    and sends the message's last bytes and the final dot in one chunk (one write, not two) when they are small.
//    The class is not touched; a stream that does not look like a fresh DataStream is left as it is.
//
// Each acts only on connections and pools the relay created. Upgrading nodemailer: re-run the delivery,
// capability and preflight tests, then move the pin.
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Readable, Transform, TransformCallback, Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type Mail from 'nodemailer/lib/mailer';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPPoolOptions, SMTPPoolSentMessageInfo } from 'nodemailer/lib/smtp-pool';
import type { Envelope } from '../types.js';
import { dotStuff } from './dot-stuffing.js';

/** The version the seams below were written against. */
export const NODEMAILER_VERSION = '10.6.0';

export type PooledTransport = Mail<SMTPPoolSentMessageInfo, SMTPPoolOptions>;
type PoolMail = Parameters<PooledTransport['transporter']['send']>[0];
/** What the pool answers for a sent message: accepted/rejected recipients and the upstream's last reply. */
export type PoolInfo = NonNullable<Parameters<Parameters<PooledTransport['transporter']['send']>[1]>[1]>;

/** Throws, naming the versions, when the installed nodemailer is not the one these seams fit. */
export function checkNodemailerSeams(): void {
  const installed = (createRequire(import.meta.url)('nodemailer/package.json') as { version: string }).version;
  const connection = new SMTPConnection({}) as unknown as Record<string, unknown>;
  const missing = [
    !Array.isArray(connection._supportedExtensions) && 'SMTPConnection._supportedExtensions',
    !('_socket' in connection) && 'SMTPConnection._socket',
    !isFreshDataStream(newDataStream()) && 'DataStream (inByteCount, outByteCount, lastByte, _transform, _flush)',
  ].filter(Boolean);
  if (installed !== NODEMAILER_VERSION || missing.length > 0) {
    throw new Error(
      `tenant-relay needs nodemailer ${NODEMAILER_VERSION} (relay/delivery/nodemailer-seams.ts), found ${installed}${missing.length ? `; missing: ${missing.join(', ')}` : ''}`,
    );
  }
}

/**
 * Hands one message to a pool. `createStream` is called for each try (the pool may resend over another
 * connection); `onStreamed` is told when a try's stream was read to its end, i.e. the whole message went out.
 */
export function sendThroughPool(transport: PooledTransport, envelope: Envelope, createStream: () => Readable, signal: AbortSignal, onStreamed: () => void): Promise<PoolInfo> {
  const mail = {
    data: { signal },
    message: {
      getEnvelope: () => ({ from: envelope.mailFrom, to: [...envelope.rcptTo] }),
      messageId: () => '',
      getHeader: () => '',
      createReadStream: (): Readable => withFastStuffing(createStream().once('end', onStreamed)),
    },
  };
  return new Promise((resolve, reject) => {
    transport.transporter.send(mail as unknown as PoolMail, (err, sent) => (err || !sent ? reject(err ?? new Error('no answer from the pool')) : resolve(sent)));
  });
}

/** The extensions the server offered in EHLO (after STARTTLS when it was used), upper case. */
export function offeredExtensions(connection: SMTPConnection): ReadonlySet<string> {
  const extensions = (connection as unknown as { _supportedExtensions?: string[] })._supportedExtensions ?? [];
  return new Set(extensions.map((e) => e.toUpperCase()));
}

/** The TLS socket under a connection, when TLS was negotiated. */
export function tlsSocketOf(connection: SMTPConnection): Partial<TLSSocket> | undefined {
  return (connection as unknown as { _socket?: Partial<TLSSocket> })._socket || undefined;
}

/** DataStream's state, as its _transform keeps it; `held` is ours (see stuffedTransform). */
interface DataStreamState extends Transform {
  inByteCount: number;
  outByteCount: number;
  lastByte: number | false;
  held?: Buffer;
}

/** A DataStream as nodemailer's package holds it (not exported: loaded from its file), for the start check. */
function newDataStream(): unknown {
  const require = createRequire(import.meta.url);
  try {
    const file = path.join(path.dirname(require.resolve('nodemailer/package.json')), 'dist/cjs/smtp-connection/data-stream.js');
    const loaded = require(file) as { default?: new () => unknown } & (new () => unknown);
    return new (loaded.default ?? loaded)();
  } catch {
    return undefined;
  }
}

function isFreshDataStream(stream: unknown): stream is DataStreamState {
  const s = stream as Partial<DataStreamState> | undefined;
  return (
    s?.constructor?.name === 'DataStream' &&
    typeof s._transform === 'function' &&
    typeof s._flush === 'function' &&
    s.inByteCount === 0 &&
    s.outByteCount === 0 &&
    s.lastByte === false
  );
}

/**
 * DataStream._transform of nodemailer 10.6.0 with the per-byte loop replaced by dotStuff. Each stuffed
 * chunk is held until the next one comes or the stream ends, so that the last goes out together with the
 * final dot (stuffedFlush): DataStream pushes the dot on its own, and the connection writes each chunk
 * with a system call of its own, one more per message for the upstream to wake up to.
 */
function stuffedTransform(this: DataStreamState, chunk: Buffer | string, _encoding: BufferEncoding, done: TransformCallback): void {
  if (!chunk || chunk.length === 0) return done();
  const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
  this.inByteCount += bytes.length;
  const out = dotStuff(bytes, this.lastByte);
  this.outByteCount += out.length;
  if (this.held) this.push(this.held);
  this.held = out;
  this.lastByte = bytes[bytes.length - 1] as number;
  done();
}

/**
 * The largest last chunk copied to join the final dot. A copy is cheaper than a write, but each copy of a
 * large message is outside memory that brings V8's full collection sooner (200 KB messages: one every 11),
 * for a write that matters less the larger the message.
 */
const JOIN_DOT_MAX = 16 * 1024;

/** DataStream._flush of nodemailer 10.6.0 (the final dot, after a line end of its own when the message has none), with the held chunk in front. */
function stuffedFlush(this: DataStreamState, done: TransformCallback): void {
  const end = Buffer.from(this.lastByte === 0x0a ? '.\r\n' : this.lastByte === 0x0d ? '\n.\r\n' : '\r\n.\r\n');
  this.outByteCount += end.length;
  const held = this.held;
  if (held && held.length <= JOIN_DOT_MAX) this.push(Buffer.concat([held, end]));
  else {
    if (held) this.push(held);
    this.push(end);
  }
  this.held = undefined;
  done();
}

/** Our message stream, whose pipe() gives the DataStream it feeds the faster transform. */
export function withFastStuffing(stream: Readable): Readable {
  const pipe = stream.pipe.bind(stream);
  stream.pipe = <T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T => {
    if (isFreshDataStream(destination)) {
      destination._transform = stuffedTransform;
      destination._flush = stuffedFlush;
    }
    return pipe(destination as unknown as Writable, options) as unknown as T;
  };
  return stream;
}
