// One inbound SMTP session, RFC 5321 as apps speak it: greeting, EHLO/HELO, AUTH PLAIN/LOGIN (RFC 4954),
// STARTTLS (RFC 3207), MAIL, RCPT, DATA, RSET, NOOP, VRFY, HELP, QUIT, with PIPELINING (RFC 2920).
// The relay's handlers (SessionHooks) decide at each step; this module owns the wire: reading lines,
// the order of commands, their syntax and the replies that say so (relay/errors.ts), the DATA phase.
//
// Why not smtp-server (which this replaced): at one message per connection, the common case, its
// streams, per-command closures and event-loop turns were 10-18 % of the relay's CPU a message, and
// the relay had to reach into it for seven things it does not offer (our enhanced codes, AUTH only after
// TLS, the 354 refused when content came early, source routes, the close after QUIT, the greeting delay,
// no per-connection random bytes). Here each of those is a line of its own.
import type net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { formatReply, Replies, type SmtpReply } from '../../errors.js';
import { newSessionId } from '../../ids.js';
import type { AuthIdentity } from '../../types.js';
import { decodeLoginLine, decodePlain, heloName, isHostname, isHttpRequest, mailParameterProblem, parseAddressLine, verbOf } from './command-line.js';
import { DotReader } from './dot-reader.js';
import type { DataAnswer, InboundSession, SessionHooks, SmtpAddress, Verdict } from './session-types.js';

/** RFC 5321 4.5.3.1.4: a command line, CRLF included. */
const MAX_LINE = 512;
/** Commands a pipelining client may have waiting while one is answered, before the socket stops being read. */
const MAX_WAITING_INPUT = 64 * 1024;
/** After the relay has closed its side: how long a client that does not close its own is waited for. */
const HALF_CLOSE_MS = 5_000;
const LF = 0x0a;
const CONTROL = /[\u0000-\u001f\u007f]/;
const CONTROL_ALL = /[\u0000-\u001f\u007f]/g;

/** What a session reads of its listener; the limits are read at each use, so a reload applies at once. */
export interface SessionSettings {
  /** Our name, in the greeting and EHLO. */
  readonly name: string;
  /** RFC 1870 SIZE: the largest message, in bytes. */
  readonly size: () => number;
  readonly maxRecipients: () => number;
  readonly idleTimeoutMs: () => number;
  /** When AUTH is offered: always, only once the session is encrypted, or never (no password in cleartext). */
  readonly auth: 'offered' | 'after-tls' | 'never';
  /** The certificate STARTTLS upgrades with; undefined on a listener without STARTTLS. */
  readonly startTls: (() => tls.SecureContext) | undefined;
  /** Milliseconds to wait before the greeting (0: at once); a client that talks first is refused. */
  readonly greetingDelayMs: (remoteAddress: string) => number;
  /** The client's names from reverse DNS (none: [address] is used). */
  readonly reverse: (ip: string, done: (err: Error | null, names?: string[]) => void) => void;
  /** True once the listener is shutting down: every command is answered 421. */
  readonly closing: () => boolean;
  /** A handler threw (a bug of the relay's): for the log; the session has answered the client. */
  readonly fault: (err: Error) => void;
}

type State = 'greeting' | 'command' | 'data' | 'closed';

export class SmtpSession implements InboundSession {
  readonly id = newSessionId();
  readonly remoteAddress: string;
  clientHostname: string;
  hostNameAppearsAs: string | undefined;
  secure: boolean;
  user: AuthIdentity | undefined;
  envelope: { mailFrom: SmtpAddress | undefined; rcptTo: SmtpAddress[] } = { mailFrom: undefined, rcptTo: [] };
  transaction = 1;

  readonly #settings: SessionSettings;
  readonly #hooks: SessionHooks;
  readonly #gone: (session: SmtpSession) => void;
  #socket: net.Socket;
  #state: State = 'greeting';
  /** Command bytes received and not yet read. */
  #input: Buffer | undefined;
  /** Waiting for a handler, for the socket to drain, for a TLS handshake or for DATA's answer: input waits. */
  #busy = false;
  #paused = false;
  /** A STARTTLS handshake is under way: the client owes it. */
  #handshaking = false;
  #unrecognized = 0;
  /** AUTH's next line goes here instead of being read as a command. */
  #continuation: ((line: string) => void) | undefined;
  #dot: DotReader | undefined;
  #message: MessageStream | undefined;
  #dataEnded = false;
  #answer: DataAnswer | undefined;
  #finished = false;
  /** After our side is closed: the client's side is waited for this long, then cut. */
  #halfClose: NodeJS.Timeout | undefined;

  readonly #onData = (chunk: Buffer) => this.#received(chunk);
  readonly #onTimeout = () => this.#idle();
  readonly #onClose = () => this.#finish();

  constructor(socket: net.Socket, secure: boolean, settings: SessionSettings, hooks: SessionHooks, gone: (session: SmtpSession) => void) {
    this.#socket = socket;
    this.secure = secure;
    this.#settings = settings;
    this.#hooks = hooks;
    this.#gone = gone;
    const ip = socket.remoteAddress ?? '';
    this.remoteAddress = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    this.clientHostname = `[${this.remoteAddress}]`;
    this.#listen(socket);
  }

  /** Greets the client after the listener's delay for its address, once the relay lets it in. */
  start(): void {
    const delay = this.#settings.greetingDelayMs(this.remoteAddress);
    // unref: a connection waiting for its greeting must not keep a stopping process alive.
    if (delay > 0) setTimeout(() => this.#greet(), delay).unref();
    else this.#greet();
  }

  /** Says `reply` now (a deadline, a shutdown); a 421 closes the session after it. */
  say(reply: SmtpReply): void {
    if (this.#state === 'closed') return;
    this.#write(`${clean(formatReply(reply))}\r\n`);
    if (reply.code === 421) this.#close();
  }

  /** Shutdown's end: the client is told, and the connection is cut. */
  cut(): void {
    this.say(Replies.shuttingDown);
    this.#socket.destroy();
  }

  #listen(socket: net.Socket): void {
    socket.on('data', this.#onData);
    socket.on('close', this.#onClose);
    socket.on('timeout', this.#onTimeout);
    // A client's reset or a failed handshake: 'close' follows and ends the session.
    socket.on('error', () => {});
    socket.setTimeout(this.#settings.idleTimeoutMs());
  }

  #greet(): void {
    if (this.#state !== 'greeting') return;
    this.#settings.reverse(this.remoteAddress, (_err, names) => {
      if (this.#state !== 'greeting') return;
      const name = names?.[0]?.toLowerCase().replace(/\.$/, '');
      if (name && isHostname(name)) this.clientHostname = name;
      const refusal = this.#attempt(() => this.#hooks.connect(this), Replies.localError);
      if (refusal) {
        this.say(refusal);
        return this.#close();
      }
      this.#state = 'command';
      this.#write(`220 ${this.#settings.name} ESMTP tenant-relay\r\n`);
    });
  }

  #received(chunk: Buffer): void {
    switch (this.#state) {
      case 'greeting':
        return this.say(Replies.talkedTooSoon);
      case 'data':
        return this.#dataReceived(chunk);
      case 'command':
        this.#input = this.#input ? Buffer.concat([this.#input, chunk]) : chunk;
        if (!this.#busy) return this.#readCommands();
        if (this.#input.length > MAX_WAITING_INPUT && !this.#paused) {
          // A client that pipelines without reading the replies: it waits until they are read.
          this.#paused = true;
          this.#socket.pause();
        }
        return;
      case 'closed':
        return;
    }
  }

  /** Reads and answers the commands waiting, until one needs a handler's answer or there are none. */
  #readCommands(): void {
    while (!this.#busy && this.#state === 'command' && this.#input) {
      const input = this.#input;
      const lf = input.indexOf(LF);
      if (lf === -1) {
        // A line that never ends is not kept growing.
        if (input.length >= MAX_LINE) this.#refuseAndClose(Replies.lineTooLong);
        break;
      }
      this.#input = lf + 1 < input.length ? input.subarray(lf + 1) : undefined;
      if (lf + 1 > MAX_LINE) {
        this.#refuseAndClose(Replies.lineTooLong);
        break;
      }
      const end = lf > 0 && input[lf - 1] === 0x0d ? lf - 1 : lf;
      // A handler's bug ends this session with a 421, never the process.
      try {
        this.#command(input.toString('utf8', 0, end));
      } catch (err) {
        this.#settings.fault(err as Error);
        this.say(Replies.localErrorClosing);
        break;
      }
      // A client that does not read its replies is not answered further until it does.
      if (!this.#busy && this.#socket.writableNeedDrain) {
        this.#busy = true;
        this.#socket.once('drain', () => this.#proceed());
      }
    }
    if (this.#paused && !this.#busy && this.#state !== 'closed' && (this.#input?.length ?? 0) < MAX_WAITING_INPUT) {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  /** Input is read again after a pause for a handler, the socket or DATA. */
  #proceed(): void {
    this.#busy = false;
    if (this.#state === 'command') this.#readCommands();
  }

  #command(line: string): void {
    if (this.#settings.closing()) return this.say(Replies.shuttingDown);
    const continuation = this.#continuation;
    if (continuation) {
      this.#continuation = undefined;
      return continuation(line);
    }
    if (isHttpRequest(line)) return this.say(Replies.httpRequest);
    const verb = verbOf(line);
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        return this.#helo(line, verb);
      case 'MAIL':
      case 'RCPT':
      case 'DATA':
      case 'AUTH':
        if (this.hostNameAppearsAs === undefined) return this.say(Replies.heloFirst);
        if (verb === 'MAIL') return this.#mail(line);
        if (verb === 'RCPT') return this.#rcpt(line);
        if (verb === 'DATA') return this.#data();
        return this.#auth(line);
      case 'RSET':
        this.#reset();
        return this.#write('250 2.0.0 Flushed\r\n');
      case 'NOOP':
        return this.#write('250 2.0.0 OK\r\n');
      case 'QUIT':
        return this.#quit();
      case 'HELP':
        return this.#write('214 2.0.0 See RFC 5321: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT\r\n');
      case 'VRFY':
        if (line.trim().split(/\s+/).length < 2) return this.say(Replies.vrfySyntax);
        return this.#write('252 2.1.5 Cannot VRFY a user; send mail and it will be tried\r\n');
      case 'STARTTLS':
        if (this.#settings.startTls) return this.#startTls(line, this.#settings.startTls);
    }
    // RFC 5321 4.2.4; a client that keeps guessing is shown the door.
    if (++this.#unrecognized >= 10) return this.say(Replies.tooManyUnrecognizedCommands);
    this.say(Replies.commandUnrecognized);
  }

  #helo(line: string, verb: 'EHLO' | 'HELO'): void {
    const name = heloName(line);
    if (name === undefined) return this.say(Replies.heloSyntax);
    this.hostNameAppearsAs = name;
    this.#reset();
    const hello = `${this.#settings.name} Hello ${this.clientHostname}`;
    if (verb === 'HELO') return this.#write(`250 ${hello}\r\n`);
    const features = ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES'];
    if (this.#authOffered() && !this.user) features.push('AUTH PLAIN LOGIN');
    if (this.#settings.startTls && !this.secure) features.push('STARTTLS');
    const size = this.#settings.size();
    if (size > 0) features.push(`SIZE ${size}`);
    this.#write(`250-${hello}\r\n${features.map((f, i) => `250${i === features.length - 1 ? ' ' : '-'}${f}\r\n`).join('')}`);
  }

  #authOffered(): boolean {
    return this.#settings.auth === 'offered' || (this.#settings.auth === 'after-tls' && this.secure);
  }

  #mail(line: string): void {
    const parsed = parseAddressLine(line, 'MAIL FROM');
    if (!parsed.ok) return this.say(addressRefusal(parsed, Replies.badSenderAddress));
    if (this.envelope.mailFrom) return this.say(Replies.nestedMail);
    const size = this.#settings.size();
    const problem = mailParameterProblem(parsed.value.args, size);
    if (problem) return this.say(problem === 'too-big' ? Replies.messageTooBig(size) : Replies.badParameter(PARAMETER_PROBLEMS[problem]));
    const from = parsed.value;
    this.#decide(() => this.#hooks.mailFrom(this, from), () => {
      this.envelope.mailFrom = from;
      this.#write('250 2.1.0 Accepted\r\n');
    });
  }

  #rcpt(line: string): void {
    const parsed = parseAddressLine(line, 'RCPT TO');
    if (!parsed.ok || parsed.value.address === '') return this.say(addressRefusal(parsed, Replies.badRecipientAddress));
    if (!this.envelope.mailFrom) return this.say(Replies.needMail);
    const to = parsed.value;
    const key = to.address.toLowerCase();
    const rcptTo = this.envelope.rcptTo;
    const known = rcptTo.findIndex((r) => r.address.toLowerCase() === key);
    const max = this.#settings.maxRecipients();
    if (max > 0 && known === -1 && rcptTo.length >= max) return this.say(Replies.tooManyRecipients(max));
    this.#decide(() => this.#hooks.rcptTo(this, to), () => {
      // The same recipient twice is one recipient.
      if (known === -1) rcptTo.push(to);
      this.#write('250 2.1.5 Accepted\r\n');
    });
  }

  /** A handler's verdict: its refusal said, or `accepted` run; input waits while a promise is pending. */
  #decide(ask: () => Verdict, accepted: () => void): void {
    const verdict = this.#attempt(ask, Replies.localError);
    if (!(verdict instanceof Promise)) return verdict ? this.say(verdict) : accepted();
    this.#busy = true;
    verdict.then(
      (refusal) => {
        if (this.#state === 'closed') return;
        if (refusal) this.say(refusal);
        else accepted();
        this.#proceed();
      },
      () => {
        this.say(Replies.localError);
        this.#proceed();
      },
    );
  }

  #data(): void {
    if (this.envelope.rcptTo.length === 0) return this.say(Replies.needRcpt);
    // RFC 2920: DATA ends a pipelined group. Content sent before the 354 is what smuggling and spam
    // tools do (Postfix's smtpd_forbid_unauth_pipelining refuses it too).
    if (this.#input || this.#socket.readableLength > 0) return this.#refuseAndClose(Replies.improperPipelining);
    this.#state = 'data';
    this.#dot = new DotReader();
    this.#dataEnded = false;
    this.#answer = undefined;
    const message = new MessageStream(() => this.#resumeData());
    message.once('close', () => this.#resumeData());
    this.#message = message;
    this.#busy = true;
    this.#write('354 End data with <CR><LF>.<CR><LF>\r\n');
    const reading = this.#attempt(() => this.#hooks.data(this, message), undefined);
    // A handler that threw reads nothing: the message is dropped as it comes (not held until the socket
    // pauses for good), so the client reaches its dot and hears the 451.
    if (!reading) message.destroy();
    (reading ?? Promise.resolve<DataAnswer>({ reply: Replies.localError })).then(
      (answer) => this.#answered(answer),
      () => this.#answered({ reply: Replies.localError }),
    );
  }

  #dataReceived(chunk: Buffer): void {
    const message = this.#message;
    const dot = this.#dot;
    if (!message || !dot) return;
    const rest = dot.feed(chunk, (part) => {
      // A handler that stopped reading (its own failure): the rest is read to the dot and dropped, so the
      // client still hears the answer.
      if (message.destroyed) return;
      if (!message.push(part) && !this.#paused) {
        // The handler reads slower than the client sends: the socket waits for it.
        this.#paused = true;
        this.#socket.pause();
      }
    });
    if (rest === undefined) return;
    this.#state = 'command';
    this.#dataEnded = true;
    if (!message.destroyed) message.push(null);
    // Commands pipelined after the dot (QUIT, the next MAIL) wait for the message's answer.
    if (rest.length > 0) this.#input = rest;
    if (this.#answer) this.#sayAnswer(this.#answer);
  }

  #resumeData(): void {
    if (this.#paused && this.#state === 'data') {
      this.#paused = false;
      this.#socket.resume();
    }
  }

  #answered(answer: DataAnswer): void {
    // The client is gone: nobody to tell, but what the relay did with the message is still reported.
    if (this.#finished) return this.#attempt(() => answer.afterReply?.(), undefined);
    // The answer is said once the message has ended, even when the handler decided before its end.
    if (this.#dataEnded) this.#sayAnswer(answer);
    else this.#answer = answer;
  }

  #sayAnswer(answer: DataAnswer): void {
    this.#answer = undefined;
    this.#message = undefined;
    this.#dot = undefined;
    this.say(answer.reply);
    this.#attempt(() => answer.afterReply?.(), undefined);
    this.transaction++;
    this.#unrecognized = 0;
    this.#reset();
    this.#proceed();
  }

  #auth(line: string): void {
    if (this.#settings.auth === 'never') return this.say(Replies.authNotOffered);
    if (!this.#authOffered()) return this.say(Replies.authNeedsTls);
    if (this.user) return this.say(Replies.authTwice);
    const [, mechanism = '', ...args] = line.trim().split(/\s+/);
    const method = mechanism.toUpperCase();
    if (method !== 'PLAIN' && method !== 'LOGIN') return this.say(Replies.authMechanism);
    if (args.length > 1) return this.say(Replies.authSyntax);
    if (method === 'PLAIN') {
      if (args[0] !== undefined) return this.#plain(args[0]);
      this.#continuation = (token) => (token.trim() === '*' ? this.say(Replies.authAborted) : this.#plain(token));
      return this.#write('334 \r\n');
    }
    const password = (username: string) => {
      this.#continuation = (line) => (line.trim() === '*' ? this.say(Replies.authAborted) : this.#login(username, Buffer.from(line.trim(), 'base64').toString('utf8')));
      this.#write('334 UGFzc3dvcmQ6\r\n');
    };
    const username = (line: string) => {
      if (line.trim() === '*') return this.say(Replies.authAborted);
      const name = decodeLoginLine(line);
      return name ? password(name) : this.say(Replies.authSyntax);
    };
    if (args[0] !== undefined) return username(args[0]);
    this.#continuation = username;
    this.#write('334 VXNlcm5hbWU6\r\n');
  }

  #plain(token: string): void {
    const credentials = decodePlain(token.trim());
    if (!credentials) return this.say(Replies.authSyntax);
    this.#login(credentials.username, credentials.password);
  }

  #login(username: string, password: string): void {
    this.#busy = true;
    (this.#attempt(() => this.#hooks.auth(this, username, password), undefined) ?? Promise.resolve(Replies.localError)).then(
      (result) => {
        if (this.#state === 'closed') return;
        if ('code' in result) this.say(result);
        else {
          this.user = result;
          this.#write('235 2.7.0 Authentication successful\r\n');
        }
        this.#proceed();
      },
      () => {
        this.say(Replies.localError);
        this.#proceed();
      },
    );
  }

  #startTls(line: string, context: () => tls.SecureContext): void {
    if (this.secure) return this.say(Replies.tlsActive);
    if (line.trim().split(/\s+/).length > 1) return this.say(Replies.startTlsSyntax);
    this.#write('220 2.0.0 Ready to start TLS\r\n');
    // RFC 3207 5: anything the client sent after STARTTLS in cleartext is dropped, never read as a
    // command of the encrypted session (the STARTTLS command injection of CVE-2011-0411).
    this.#input = undefined;
    this.#busy = true;
    this.#handshaking = true;
    const plain = this.#socket;
    plain.removeListener('data', this.#onData);
    plain.removeListener('close', this.#onClose);
    plain.removeListener('timeout', this.#onTimeout);
    plain.setTimeout(0);
    const encrypted = new tls.TLSSocket(plain, { isServer: true, secureContext: context() });
    this.#socket = encrypted;
    this.#listen(encrypted);
    encrypted.once('secure', () => {
      // RFC 3207 4.2: the session starts over; what the client said in cleartext counts for nothing.
      this.#handshaking = false;
      this.secure = true;
      this.user = undefined;
      this.hostNameAppearsAs = undefined;
      this.#reset();
      this.#proceed();
    });
  }

  /** A handler's call that throws (a bug) gives `failed` instead: told to the listener, answered, survived. */
  #attempt<T>(call: () => T, failed: T): T {
    try {
      return call();
    } catch (err) {
      this.#settings.fault(err as Error);
      return failed;
    }
  }

  #quit(): void {
    this.#write('221 2.0.0 Bye\r\n');
    const socket = this.#socket;
    // The 221 is in the kernel's hands: a plaintext socket is closed at once, as Postfix's smtpd does,
    // rather than read on until the client's FIN (one more wake-up a message). Not over TLS (its close
    // sends close_notify first), and not when the client sent more: bytes reaching a closed socket are
    // answered with a reset, which can cost it the 221.
    if (!this.secure && !this.#input && socket.readableLength === 0 && socket.writableLength === 0) {
      this.#state = 'closed';
      socket.destroy();
      return;
    }
    this.#close();
  }

  #idle(): void {
    if (this.#state === 'closed') return void this.#socket.destroy();
    // The client waits for us (a handler, DATA's answer): it owes no input, so it is not idle.
    if (this.#busy && this.#state !== 'data' && !this.#handshaking) return void this.#socket.setTimeout(this.#settings.idleTimeoutMs());
    // A handshake that never finishes has no session to say anything in.
    if (this.#handshaking) return void this.#socket.destroy();
    this.say(Replies.idleTimeout);
  }

  #refuseAndClose(reply: SmtpReply): void {
    this.say(reply);
    this.#close();
  }

  #reset(): void {
    this.envelope = { mailFrom: undefined, rcptTo: [] };
  }

  #write(text: string): void {
    const socket = this.#socket;
    if (!socket.destroyed && socket.writable) socket.write(text);
  }

  /** Our side is closed; the client's is waited for, briefly, so its last bytes are not answered with a reset. */
  #close(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#input = undefined;
    this.#continuation = undefined;
    const socket = this.#socket;
    socket.end();
    socket.resume();
    this.#halfClose = setTimeout(() => socket.destroy(), Math.min(HALF_CLOSE_MS, this.#settings.idleTimeoutMs())).unref();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = 'closed';
    // Cleared at once: left to run, it kept the socket and this session (and all they reach) alive for
    // five seconds after every connection.
    clearTimeout(this.#halfClose);
    const message = this.#message;
    // A client gone in the middle of its message: the handler's read fails, and nothing is sent.
    // Only to a reader that listens: an 'error' nobody handles would end the process.
    if (message && !this.#dataEnded) message.destroy(message.listenerCount('error') > 0 ? new Error('Connection closed before the message was received in full') : undefined);
    this.#gone(this);
    this.#attempt(() => this.#hooks.closed(this), undefined);
  }
}

/** The message of one DATA command as the handler reads it; reading on resumes a paused socket. */
class MessageStream extends Readable {
  readonly #more: () => void;
  constructor(more: () => void) {
    // Room for a typical message whole: a smaller buffer paused and resumed the socket (two system
    // calls) for every message over 16 KiB.
    super({ highWaterMark: 256 * 1024 });
    this.#more = more;
  }
  override _read(): void {
    this.#more();
  }
}

const PARAMETER_PROBLEMS = {
  'size-syntax': 'SIZE must be a number of bytes',
  body: 'BODY must be 7BIT or 8BITMIME',
  smtputf8: 'SMTPUTF8 takes no value',
} as const;

function addressRefusal(parsed: ReturnType<typeof parseAddressLine>, syntax: SmtpReply): SmtpReply {
  if (parsed.ok) return syntax;
  if (parsed.why === 'source-route') return Replies.sourceRoute;
  if (parsed.why === 'parameter') return Replies.badParameter(parsed.detail ?? 'Bad parameter');
  return syntax;
}

/** A reply is one line: text from outside (an upstream's words, an address) cannot split it. */
const clean = (text: string) => (CONTROL.test(text) ? text.replace(CONTROL_ALL, ' ') : text);
