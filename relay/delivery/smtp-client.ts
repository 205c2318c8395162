// One connection to an SMTP upstream, as the relay's delivery uses it: TLS from the first byte or
// STARTTLS (required, never optional), EHLO (HELO when refused), AUTH (PLAIN, LOGIN, XOAUTH2 with a token
// renewed once when the server answers it with a 334 challenge), then transactions one after another:
// MAIL, RCPT and DATA in one write when the server offers PIPELINING, the body dot-stuffed, its last bytes
// and the final dot in one write; or, to a server that offers CHUNKING, BDAT (RFC 3030): the message
// counted, not stuffed, and when it is in memory and small, sent in the envelope's own write, so the
// whole transaction is one round trip instead of two. Errors carry what classify.ts reads (`code`,
// `responseCode`, `response`, `rejectedErrors`), the codes nodemailer gives the same failures.
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import tls from 'node:tls';
import { Stuffing } from './dot-stuffing.js';

export interface ClientOptions {
  readonly host: string;
  readonly port: number;
  /** The name the relay gives in EHLO. */
  readonly heloName: string;
  readonly tls: 'implicit' | 'starttls' | 'none';
  readonly tlsOptions: tls.ConnectionOptions;
  readonly auth?: { readonly kind: 'password'; readonly user: string; readonly pass: string } | { readonly kind: 'oauth2'; readonly user: string; readonly token: (renew: boolean) => Promise<string> };
  /** Connecting and the greeting, each. */
  readonly connectTimeoutMs: number;
  /** Silence while an answer is awaited. */
  readonly socketTimeoutMs: number;
  /** false: DATA even to a server that offers CHUNKING. */
  readonly chunking?: false;
}

/** An upstream's failure, shaped as classify.ts reads it. */
export class UpstreamError extends Error {
  code: string;
  originalCode?: string;
  responseCode?: number;
  response?: string;
  recipient?: string;
  rejectedErrors?: UpstreamError[];
  reason?: string;

  constructor(message: string, code: string, response?: string) {
    super(response ? `${message}: ${response}` : message);
    this.code = code;
    if (response !== undefined) {
      this.response = response;
      const n = Number(/^\d{3}/.exec(response)?.[0]);
      if (n) this.responseCode = n;
    }
  }
}

/** A reply: its code and its lines as they came (codes included), joined by LF. */
export interface Reply {
  readonly code: number;
  readonly text: string;
  readonly lines: readonly string[];
}

/** What a transaction left: the recipients taken, each refused one's error, and the reply to the final dot. */
export interface SentInfo {
  readonly accepted: string[];
  readonly rejectedErrors: UpstreamError[];
  readonly response: string;
}

/** A message as it goes: its bytes (not yet dot-stuffed), and whether any byte is over 127. */
export interface OutgoingBody {
  /** In memory, or a stream made when it is to be sent (once the server said 354). */
  readonly bytes: readonly Buffer[] | (() => AsyncIterable<Buffer>);
  readonly eightBit: boolean;
  /** Every line end of the message is CRLF (the intake checked): the dot-stuffing looks only for dots. */
  readonly crlfOnly?: boolean;
}

/** A hostile server may answer without end: a reply longer than this ends the connection. */
const MAX_REPLY_LINES = 100;
const MAX_LINE = 4096;
/**
 * The largest last chunk copied to join the final dot. A copy is cheaper than a write, but each copy of a
 * large message is outside memory that brings V8's full collection sooner, for a write that matters less
 * the larger the message.
 */
const JOIN_DOT_MAX = 16 * 1024;
const DOT_LINE = Buffer.from('.\r\n');
/**
 * The largest message in memory sent with its envelope in BDAT. Larger, it waits for the envelope's
 * answer, so that a refused recipient does not cost the whole upload.
 */
const BDAT_WITH_ENVELOPE_MAX = 64 * 1024;

const isAsciiText = (s: string) => !/[^\x00-\x7f]/.test(s);

export class SmtpClientConnection {
  #socket: net.Socket;
  #decoder = new StringDecoder('utf8');
  #partial = '';
  #lines: string[] = [];
  #replies: Reply[] = [];
  #waiters: { resolve(r: Reply): void; reject(e: Error): void }[] = [];
  /** Replies owed by the server: the greeting, then one per command written. One more is a protocol error. */
  #owed = 1;
  #failure: Error | undefined;
  #extensions = new Set<string>();
  #authMethods = new Set<string>();
  /** Messages sent over this connection. */
  sent = 0;
  #busy = true;
  readonly #bdat: boolean;

  private constructor(socket: net.Socket, o: ClientOptions) {
    this.#socket = socket;
    this.#bdat = o.chunking !== false;
    this.#listen(socket);
  }

  /** Connects, reads the greeting, says EHLO, upgrades to TLS when asked and logs in: ready to send. */
  static async open(o: ClientOptions): Promise<SmtpClientConnection> {
    const socket = await connect(o);
    const c = new SmtpClientConnection(socket, o);
    try {
      await c.#start(o);
    } catch (err) {
      c.destroy(err as Error);
      throw err;
    }
    c.#busy = false;
    return c;
  }

  /** In the pool with nothing asked: a timeout there is an idle connection to close, not a failure. */
  get #idle(): boolean {
    return !this.#busy && this.#owed === 0 && this.usable;
  }

  /** Whether another message may go over it. */
  get usable(): boolean {
    return this.#failure === undefined && !this.#socket.destroyed;
  }

  get extensions(): ReadonlySet<string> {
    return this.#extensions;
  }

  get socket(): net.Socket {
    return this.#socket;
  }

  /**
   * One transaction. `body` is the message as it goes (not yet dot-stuffed); `onStreamed` is told once
   * all of it and the final dot were written, after which a lost answer may mean the message arrived.
   */
  async send(envelope: { readonly mailFrom: string; readonly rcptTo: readonly string[] }, body: OutgoingBody, onStreamed: () => void): Promise<SentInfo> {
    this.#busy = true;
    try {
      return await this.#transaction(envelope, body, onStreamed);
    } catch (err) {
      // Only a refusal the server answered, at the end of a transaction or after RSET, leaves the
      // connection ready for the next message; anything else (a body that could not be read halfway
      // through DATA) ends it, so that no later message is written into a transaction left open.
      const refused = err instanceof UpstreamError && (err.code === 'EENVELOPE' || err.code === 'EMESSAGE');
      if (!refused) this.destroy(err as Error);
      throw err;
    } finally {
      this.#busy = false;
    }
  }

  async #transaction(envelope: { readonly mailFrom: string; readonly rcptTo: readonly string[] }, body: OutgoingBody, onStreamed: () => void): Promise<SentInfo> {
    this.sent++;
    // What the message needs of the server was checked before (deliver.ts); here it is declared (RFC 6152, 6531).
    const eightBit = body.eightBit && this.#extensions.has('8BITMIME');
    const utf8 = !isAsciiText(envelope.mailFrom + envelope.rcptTo.join('')) && this.#extensions.has('SMTPUTF8');
    const mail = `MAIL FROM:<${envelope.mailFrom}>${eightBit ? ' BODY=8BITMIME' : ''}${utf8 ? ' SMTPUTF8' : ''}`;
    const rcpts = envelope.rcptTo.map((r) => `RCPT TO:<${r}>`);
    const pipelined = this.#extensions.has('PIPELINING');
    // BDAT (RFC 3030) when offered: the message counted instead of dot-ended. A message in memory is
    // known whole, so a small one goes with its envelope in one write and is answered in one round trip.
    const chunking = this.#bdat && this.#extensions.has('CHUNKING');
    // The intake found every line end CRLF: the stuffing then looks for dots only, whichever way it goes.
    const crlfOnly = body.crlfOnly === true;
    const whole = chunking && typeof body.bytes !== 'function' ? wholeMessage(body.bytes, crlfOnly) : undefined;
    const withEnvelope = whole !== undefined && pipelined && whole.size <= BDAT_WITH_ENVELOPE_MAX;
    let mailReply: Reply;
    const rcptReplies: Reply[] = [];
    /** The reply to a DATA or a BDAT sent with the envelope. */
    let lastReply: Reply | undefined;
    if (pipelined) {
      const data = chunking ? [] : ['DATA'];
      this.#socket.cork();
      this.#write(`${[mail, ...rcpts, ...data].join('\r\n')}\r\n`, rcpts.length + 1 + data.length);
      if (withEnvelope) this.#writeChunk(whole.parts, whole.size, true);
      this.#socket.uncork();
      if (withEnvelope) onStreamed();
      mailReply = await this.#reply();
      for (let i = 0; i < rcpts.length; i++) rcptReplies.push(await this.#reply());
      if (data.length > 0 || withEnvelope) lastReply = await this.#reply();
    } else {
      mailReply = await this.#command(mail);
      if (mailReply.code === 250) for (const line of rcpts) rcptReplies.push(await this.#command(line));
    }
    if (mailReply.code !== 250) {
      await this.#resetAfter(lastReply);
      throw new UpstreamError('Mail command failed', 'EENVELOPE', mailReply.text);
    }
    const accepted: string[] = [];
    const rejectedErrors: UpstreamError[] = [];
    envelope.rcptTo.forEach((recipient, i) => {
      const reply = rcptReplies[i] as Reply;
      if (reply.code === 250 || reply.code === 251) accepted.push(recipient);
      else rejectedErrors.push(Object.assign(new UpstreamError(`Recipient command failed`, 'EENVELOPE', reply.text), { recipient }));
    });
    if (accepted.length === 0) {
      await this.#resetAfter(lastReply);
      const err = new UpstreamError("Can't send mail - all recipients were rejected", 'EENVELOPE', rejectedErrors[0]?.response);
      err.rejectedErrors = rejectedErrors;
      throw err;
    }
    let done: Reply;
    if (chunking) {
      if (withEnvelope) done = lastReply as Reply;
      else done = whole ? await this.#sendWhole(whole, onStreamed) : await this.#sendChunks(body.bytes as () => AsyncIterable<Buffer>, pipelined, crlfOnly, onStreamed);
      // A chunk refused ends the transaction on the server's side or leaves it in doubt: RSET says which.
      if (done.code !== 250) await this.#resetAfter(done);
    } else {
      lastReply ??= await this.#command('DATA');
      if (lastReply.code !== 354) {
        await this.#resetAfter(undefined);
        throw new UpstreamError('Data command failed', 'EENVELOPE', lastReply.text);
      }
      this.#owed++;
      await this.#writeBody(body.bytes, crlfOnly);
      onStreamed();
      done = await this.#reply();
    }
    if (done.code !== 250) throw new UpstreamError('Message failed', 'EMESSAGE', done.text);
    return { accepted, rejectedErrors, response: done.text };
  }

  /** Says QUIT and closes, without waiting for the answer. */
  quit(): void {
    if (this.usable) this.#socket.end('QUIT\r\n');
    this.#fail(new UpstreamError('Connection closed', 'ECONNECTION'));
  }

  destroy(err: Error = new UpstreamError('Connection closed', 'ECONNECTION')): void {
    this.#fail(err);
    this.#socket.destroy();
  }

  async #start(o: ClientOptions): Promise<void> {
    this.#socket.setTimeout(o.connectTimeoutMs);
    const greeting = await this.#reply();
    this.#socket.setTimeout(o.socketTimeoutMs);
    if (greeting.code !== 220) throw new UpstreamError('Invalid greeting', 'EPROTOCOL', greeting.text);
    await this.#hello(o.heloName);
    if (o.tls === 'starttls' && !(this.#socket instanceof tls.TLSSocket)) {
      if (!this.#extensions.has('STARTTLS')) throw new UpstreamError('No STARTTLS support on the server', 'ETLS');
      const answer = await this.#command('STARTTLS');
      if (answer.code !== 220) throw new UpstreamError('Error upgrading connection with STARTTLS', 'ETLS', answer.text);
      // Anything the server (or someone on the path) sent after its 220 came in cleartext: taken as said
      // under TLS, it would be an injected reply (the STARTTLS injection of CVE-2011-0411).
      // (A whole reply more has already ended the connection as one to nothing asked.)
      if (this.#failure || this.#partial !== '' || this.#lines.length > 0 || this.#replies.length > 0) throw new UpstreamError('Data after the STARTTLS reply, before TLS', 'ETLS');
      await this.#upgrade(o);
      await this.#hello(o.heloName);
    }
    if (o.auth) await this.login(o.auth);
  }

  async #hello(name: string): Promise<void> {
    let reply = await this.#command(`EHLO ${name}`);
    if (reply.code !== 250) {
      reply = await this.#command(`HELO ${name}`);
      if (reply.code !== 250) throw new UpstreamError('Invalid response for HELO', 'EPROTOCOL', reply.text);
      this.#extensions = new Set();
      this.#authMethods = new Set();
      return;
    }
    const extensions = new Set<string>();
    const auth = new Set<string>();
    for (const line of reply.lines.slice(1)) {
      const words = line.slice(4).trim().toUpperCase().split(/[\s=]+/);
      const keyword = words[0] ?? '';
      extensions.add(keyword);
      if (keyword === 'AUTH') for (const m of words.slice(1)) auth.add(m);
    }
    this.#extensions = extensions;
    this.#authMethods = auth;
  }

  async #upgrade(o: ClientOptions): Promise<void> {
    const plain = this.#socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('timeout');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ ...o.tlsOptions, socket: plain, servername: servernameOf(o) }, () => resolve(s));
      s.once('error', (err: Error) => reject(wrapped(err, 'ETLS')));
    });
    this.#socket = secure;
    this.#listen(secure);
    secure.setTimeout(o.socketTimeoutMs);
  }

  /** Logs in (done by open() when the options name credentials; preflight asks for it on its own). */
  async login(auth: NonNullable<ClientOptions['auth']>): Promise<void> {
    if (auth.kind === 'oauth2') return this.#loginXOAuth2(auth);
    const method = this.#authMethods.has('PLAIN') ? 'PLAIN' : this.#authMethods.has('LOGIN') ? 'LOGIN' : 'PLAIN';
    let reply: Reply;
    if (method === 'PLAIN') {
      reply = await this.#command(`AUTH PLAIN ${Buffer.from(`\0${auth.user}\0${auth.pass}`, 'utf8').toString('base64')}`);
    } else {
      reply = await this.#command('AUTH LOGIN');
      if (reply.code === 334) reply = await this.#command(Buffer.from(auth.user, 'utf8').toString('base64'));
      if (reply.code === 334) reply = await this.#command(Buffer.from(auth.pass, 'utf8').toString('base64'));
    }
    if (reply.code !== 235) throw new UpstreamError('Invalid login', 'EAUTH', reply.text);
  }

  /** Google answers a refused token with a 334 challenge: an empty line ends it, and one new token is tried. */
  async #loginXOAuth2(auth: { readonly user: string; readonly token: (renew: boolean) => Promise<string> }): Promise<void> {
    for (const renew of [false, true]) {
      let token: string;
      try {
        token = await auth.token(renew);
      } catch (err) {
        // Wrapped, not changed: a refused token may be one error shared by every message that asked.
        const cause = err as Error & { code?: string; reason?: string };
        const e = new UpstreamError(cause.message, 'EAUTH');
        if (cause.code) e.originalCode = cause.code;
        if (cause.reason !== undefined) e.reason = cause.reason;
        throw e;
      }
      let reply = await this.#command(`AUTH XOAUTH2 ${Buffer.from(`user=${auth.user}\x01auth=Bearer ${token}\x01\x01`, 'utf8').toString('base64')}`);
      if (reply.code === 334) {
        reply = await this.#command('');
        if (!renew) continue;
      }
      if (reply.code === 235) return;
      throw new UpstreamError('Invalid login', 'EAUTH', reply.text);
    }
  }

  async #writeBody(body: OutgoingBody['bytes'], crlfOnly: boolean): Promise<void> {
    const stuffing = new Stuffing(true, crlfOnly);
    let held: Buffer | undefined;
    // A message in parts (a header prefix, or one over 64 KB) leaves in as few system calls as the socket
    // takes: the writes before the dot are gathered into one writev (uncorked below, or by a wait for drain).
    this.#socket.cork();
    const put = async (chunk: Buffer) => {
      if (chunk.length === 0) return;
      const out = stuffing.next(chunk);
      this.#check();
      if (held && !this.#socket.write(held)) {
        this.#socket.uncork();
        await this.#drained();
        this.#socket.cork();
      }
      held = out;
    };
    if (typeof body === 'function') for await (const chunk of body()) await put(chunk);
    else for (const part of body) await put(part);
    // The final dot, after a line end of its own when the message has none.
    const end = Buffer.concat([stuffing.lineEnd(), DOT_LINE]);
    this.#check();
    // The last bytes and the final dot in one write when they are small: one wake-up fewer for the upstream.
    if (!held) this.#socket.write(end);
    else if (held.length <= JOIN_DOT_MAX) this.#socket.write(Buffer.concat([held, end]));
    else {
      this.#socket.write(held);
      this.#socket.write(end);
    }
    this.#socket.uncork();
  }

  /** One BDAT chunk, the command and its bytes in one write, owed a reply. False: the socket's buffer is full. */
  #writeChunk(parts: readonly Buffer[], size: number, last: boolean): boolean {
    this.#socket.cork();
    this.#write(`BDAT ${size}${last ? ' LAST' : ''}\r\n`);
    let room = true;
    for (const b of parts) room = this.#socket.write(b);
    this.#socket.uncork();
    return room;
  }

  /** A message in memory in one BDAT LAST chunk, once its envelope was taken. */
  async #sendWhole(whole: WholeMessage, onStreamed: () => void): Promise<Reply> {
    this.#writeChunk(whole.parts, whole.size, true);
    onStreamed();
    return this.#reply();
  }

  /**
   * A message from a file in BDAT chunks, one per read, the last marked LAST. Pipelined, every chunk goes
   * without waiting; else each is answered before the next. Returns the first refusal, or the LAST's reply.
   */
  async #sendChunks(read: () => AsyncIterable<Buffer>, pipelined: boolean, crlfOnly: boolean, onStreamed: () => void): Promise<Reply> {
    const stuffing = new Stuffing(false, crlfOnly);
    let held: Buffer | undefined;
    let owed = 0;
    let answer: Reply | undefined;
    const send = async (parts: readonly Buffer[], final: boolean) => {
      const room = this.#writeChunk(parts, parts.reduce((n, b) => n + b.length, 0), final);
      if (final) onStreamed();
      if (pipelined) {
        owed++;
        if (!room) await this.#drained();
        return;
      }
      const reply = await this.#reply();
      if (reply.code !== 250 || final) answer = reply;
    };
    for await (const chunk of read()) {
      if (chunk.length === 0) continue;
      const out = stuffing.next(chunk);
      if (held) await send([held], false);
      // Refused halfway (not pipelined): no more chunks (RFC 3030, 2).
      if (answer) return answer;
      held = out;
    }
    await send(held ? [held, stuffing.lineEnd()] : [stuffing.lineEnd()], true);
    // Pipelined: every chunk's reply, in order; the first refusal is what happened to the message.
    for (; owed > 0; owed--) {
      const reply = await this.#reply();
      if (reply.code !== 250 || owed === 1) answer ??= reply;
    }
    return answer as Reply;
  }

  #drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const failed = () => reject(this.#failure ?? new UpstreamError('Connection closed unexpectedly', 'ECONNECTION'));
      this.#socket.once('drain', () => {
        this.#socket.off('close', failed);
        resolve();
      });
      this.#socket.once('close', failed);
    });
  }

  /**
   * After a refusal: RSET leaves the connection ready for the next message. `lastReply` is the last
   * answer the transaction had (to a DATA or BDAT a pipelined server refused too, or a refused chunk).
   */
  async #resetAfter(lastReply: Reply | undefined): Promise<void> {
    if (lastReply && lastReply.code < 400) {
      // A server that took DATA or a message with no recipient, or answered a chunk with a 2xx other than
      // 250 or a 3xx: what it would make of an RSET now is unknown, and the connection is not reused.
      this.destroy();
      return;
    }
    const reply = await this.#command('RSET').catch(() => undefined);
    if (reply?.code !== 250) this.destroy();
  }

  #command(line: string): Promise<Reply> {
    this.#write(`${line}\r\n`);
    return this.#reply();
  }

  /** Writes command lines (several at once when pipelined), each owed a reply. */
  #write(text: string, commands = 1): void {
    this.#check();
    this.#owed += commands;
    this.#socket.write(text);
  }

  #check(): void {
    if (this.#failure) throw this.#failure;
  }

  #reply(): Promise<Reply> {
    const ready = this.#replies.shift();
    if (ready) return Promise.resolve(ready);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #listen(socket: net.Socket): void {
    // The client batches its own writes (a pipelined envelope, the body with its dot): Nagle's algorithm
    // would hold the second of two small writes for the first one's ACK, which the server delays (40 ms).
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    // Silent past the socket timeout: while an answer is owed, the connection failed; idle in the pool, it
    // is closed politely.
    socket.on('timeout', () => (this.#idle ? this.quit() : this.destroy(new UpstreamError('Timeout', 'ETIMEDOUT'))));
    socket.on('error', (err: Error) => this.#fail(wrapped(err, 'ECONNECTION')));
    socket.on('close', () => this.#fail(new UpstreamError('Connection closed unexpectedly', 'ECONNECTION')));
  }

  #onData(chunk: Buffer): void {
    if (this.#failure) return;
    const text = this.#partial + this.#decoder.write(chunk);
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    if (this.#partial.length > MAX_LINE) return this.destroy(new UpstreamError('Line too long from the server', 'EPROTOCOL'));
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      const m = /^(\d{3})([ -]|$)/.exec(line);
      if (!m) return this.destroy(new UpstreamError('Invalid response from the server', 'EPROTOCOL', line.slice(0, 512)));
      this.#lines.push(line);
      if (this.#lines.length > MAX_REPLY_LINES) return this.destroy(new UpstreamError('Reply too long from the server', 'EPROTOCOL'));
      if (m[2] === '-') continue;
      const reply: Reply = { code: Number(m[1]), text: this.#lines.join('\n'), lines: this.#lines };
      this.#lines = [];
      // A reply to nothing asked (a server talking ahead, or one that would fill memory): the replies no
      // longer line up with the commands, and the connection is not trusted with another message.
      if (this.#owed === 0) return this.destroy(new UpstreamError('Unexpected reply from the server', 'EPROTOCOL', reply.text.slice(0, 512)));
      this.#owed--;
      const waiter = this.#waiters.shift();
      if (waiter) waiter.resolve(reply);
      else this.#replies.push(reply);
    }
  }

  #fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }
}

/** A message in memory as BDAT sends it: line ends made CRLF, ending with one, and its size. */
interface WholeMessage {
  readonly parts: readonly Buffer[];
  readonly size: number;
}

/** `crlfOnly`: the intake found every line end CRLF, so the bytes are not scanned for them again. */
function wholeMessage(bytes: readonly Buffer[], crlfOnly: boolean): WholeMessage {
  const stuffing = new Stuffing(false, crlfOnly);
  const parts = [...bytes.map((chunk) => stuffing.next(chunk)), stuffing.lineEnd()].filter((b) => b.length > 0);
  return { parts, size: parts.reduce((n, b) => n + b.length, 0) };
}

function servernameOf(o: ClientOptions): string | undefined {
  const name = o.tlsOptions.servername ?? o.host;
  return net.isIP(name) ? undefined : name;
}

function connect(o: ClientOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket: net.Socket =
      o.tls === 'implicit' ? tls.connect({ ...o.tlsOptions, host: o.host, port: o.port, servername: servernameOf(o) }) : net.connect({ host: o.host, port: o.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new UpstreamError('Connection timeout', 'ETIMEDOUT'));
    }, o.connectTimeoutMs);
    socket.once(o.tls === 'implicit' ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(o.tls === 'implicit' && !(err as { syscall?: string }).syscall ? wrapped(err, 'ETLS') : wrapped(err, 'ECONNECTION'));
    });
  });
}

/** A socket's or TLS's error under the relay's code for it, its own code (ECONNREFUSED, a certificate's) kept as originalCode. */
function wrapped(err: Error, code: 'ECONNECTION' | 'ETLS'): UpstreamError {
  const e = new UpstreamError(err.message, code);
  const own = (err as { code?: string }).code;
  if (own) e.originalCode = own;
  return e;
}
