// Where the relay goes past smtp-server's documented API, in one module. It acts only on the relay's own
// servers: RelaySmtpServer makes its connections itself (connect(), as smtp-server 3.21.6 does) and
// adapts each one before it starts; no prototype is touched, so other SMTPServers in the process (the
// tests' upstreams) are stock. checkSmtpServerSeams() runs before the first server starts and names the
// version when the members used here are not there. Upgrading smtp-server: re-run the inbound, smuggling
// and limits tests, then move the pin (package.json names the version exactly).
//
// What each adaptation is for:
// - _handleProxy: see there (a per-connection cost with no use to the relay).
// - init: smtp-server waits a fixed 100 ms before the greeting of every connection (an early-talker
//   check); an app that opens a connection per message paid it on every message. The wait is the
//   relay's choice per client (none for trusted networks), and "too many clients" is said from our table.
// - send: our replies carry their own enhanced code (smtp-server derives one from the number alone, so
//   "553 5.7.1" could not be said); an over-long line gets RFC 5321's 500, not smtp-server's 421; the EHLO
//   of a STARTTLS listener offers AUTH only after TLS (Postfix's smtpd_tls_auth_only: a client that sees
//   no AUTH in cleartext never tries it there; smtp-server offers it and then refuses it); and a
//   354 whose message content already arrived (RFC 2920: DATA ends a pipelined group; what smuggling and
//   spam tools do, what Postfix refuses with smtpd_forbid_unauth_pipelining) is refused and closed.
// - _onCommand: source routes (<@relay:user@host>) are refused before smtp-server strips them, as RFC
//   5321 lets it; nothing legitimate sends them any more.
// - the parser's _write: remembers the chunk being parsed, so the 354 can look past the DATA line.
// - handler_QUIT: after the 221 a plaintext session's socket is closed at once, as Postfix's smtpd closes
//   it. smtp-server half-closes it and reads on until the client's FIN (or 5 s): at one message per
//   connection, one more wake-up, read and end event a message. Not over TLS (its close sends TLS's
//   close_notify first), and not when the client sent more after QUIT: such a client may still be
//   sending, and bytes that reach a closed socket are answered with a reset, which can cost it the 221.
import { createRequire } from 'node:module';
import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';
import { SMTPStream } from 'smtp-server/lib/smtp-stream';
import { Replies, type SmtpReply } from '../errors.js';
import { newSessionId } from '../ids.js';

/** The version the adaptations below were written against. */
export const SMTP_SERVER_VERSION = '3.21.6';

export interface SeamPolicy {
  /** Milliseconds to wait before the 220 greeting for a client at this address (0: greet at once). */
  greetingDelayMs(remoteAddress: string): number;
  /** Offer AUTH in EHLO only once the session is encrypted (a STARTTLS listener: the password waits for TLS). */
  readonly authOnlyOverTls?: boolean;
}

/** The limits of a running server that a new config snapshot may change. */
export interface ServerLimits {
  readonly size: number;
  readonly maxClients: number;
  readonly maxRecipients: number;
  readonly socketTimeout: number;
}

const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;
const SOURCE_ROUTE = /^(MAIL FROM|RCPT TO)\s*:\s*<\s*@/i;
const DATA_LINE = /(?:^|\n)DATA[ \t]*\r?\n/gi;
const QUIT_LINE = /(?:^|\n)QUIT\b[^\n]*\n/gi;
/** The command-mode chunk the parser is working through. */
const CHUNK = Symbol('chunk');

type Parser = SMTPStream & { [CHUNK]?: Buffer };

/** Throws, naming the versions, when the installed smtp-server is not the one these adaptations fit. */
export function checkSmtpServerSeams(): void {
  const installed = (createRequire(import.meta.url)('smtp-server/package.json') as { version: string }).version;
  const has = (proto: object, names: string[]) => names.filter((n) => typeof (proto as Record<string, unknown>)[n] !== 'function');
  const missing = [
    ...has(SMTPServer.prototype, ['connect', '_onError', '_onClientConnect', '_handleProxy', '_expectsProxyHeader']).map((n) => `SMTPServer.${n}`),
    ...has(SMTPConnection.prototype, ['init', 'connectionReady', '_setListeners', '_createParser', '_onCommand', 'send', 'close', 'handler_QUIT']).map((n) => `SMTPConnection.${n}`),
    ...has(SMTPStream.prototype, ['_write']).map((n) => `SMTPStream.${n}`),
  ];
  if (installed !== SMTP_SERVER_VERSION || missing.length > 0) {
    throw new Error(
      `tenant-relay needs smtp-server ${SMTP_SERVER_VERSION} (relay/inbound/smtp-server-seams.ts), found ${installed}${missing.length ? `; missing: ${missing.join(', ')}` : ''}`,
    );
  }
}

/** An SMTPServer whose connections are the relay's own, adapted as described above. */
export class RelaySmtpServer extends SMTPServer {
  readonly #policy: SeamPolicy;

  constructor(options: SMTPServerOptions, policy: SeamPolicy) {
    super(options);
    this.#policy = policy;
  }

  // Without a PROXY header to read, smtp-server 3.21.6's _handleProxy draws 10 random bytes for a session id
  // that connect() below replaces, and defers the session by an event-loop turn: together 1.7 % of the
  // relay's CPU at one message per connection. The relay never sets useProxy, but a server that did gets
  // the stock path.
  override _handleProxy(socket: net.Socket, callback: Parameters<SMTPServer['_handleProxy']>[1]): void {
    if (this._expectsProxyHeader(socket)) return super._handleProxy(socket, callback);
    callback(null, { id: '', ignore: this.options.ignoredHosts?.includes(socket.remoteAddress ?? '') ?? false });
  }

  // smtp-server 3.21.6's connect(), with the connection adapted between its construction and its start.
  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: ConstructorParameters<typeof SMTPConnection>[2]): void {
    // A session id of ours: smtp-server would draw 10 random bytes from the system for every connection.
    const connection = new SMTPConnection(this, socket, { ...socketOptions, id: newSessionId() });
    this.#adapt(connection);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data) => this._onClientConnect(data));
    connection.init();
  }

  /** Says `reply` to the client of this session; a 421 closes the connection after it. */
  replyTo(session: Pick<SMTPServerSession, 'id'>, reply: SmtpReply): boolean {
    // A lookup per deadline or shutdown, not per command: the set is smtp-server's own, kept current by it.
    const connection = [...this.connections].find((c) => c.id === session.id);
    connection?.send(reply.code, `${reply.enhanced} ${reply.text}`);
    return connection !== undefined;
  }

  /** The ids of the sessions open now. */
  sessionIds(): string[] {
    return [...this.connections].map((c) => c.id);
  }

  get sessionCount(): number {
    return this.connections.size;
  }

  applyLimits(limits: ServerLimits): void {
    Object.assign(this.options, limits);
  }

  /** Stops listening; sessions still open after `graceMs` are cut. */
  closeWithin(graceMs: number): Promise<void> {
    // smtp-server waits `closeTimeout` for open sessions before it cuts them; 0 would mean its 30 s default.
    this.options.closeTimeout = Math.max(1, graceMs);
    return new Promise((resolve) => this.close(() => resolve()));
  }

  #adapt(connection: SMTPConnection): void {
    const policy = this.#policy;
    const { connections, options } = this;
    const stockSend = connection.send;
    const stockOnCommand = connection._onCommand;
    const stockCreateParser = connection._createParser;
    const stockQuit = connection.handler_QUIT;
    const rememberChunks = (parser: Parser) => {
      const write = parser._write;
      parser._write = function (this: Parser, chunk: Buffer, encoding, done) {
        this[CHUNK] = chunk;
        write.call(this, chunk, encoding, done);
      };
      return parser;
    };

    connection.init = function (this: SMTPConnection) {
      this._setListeners(() => {
        const { maxClients } = options;
        if (maxClients && connections.size > maxClients) return sayAndClose(this, Replies.tooManyConnections, stockSend);
        const delay = policy.greetingDelayMs(this.remoteAddress);
        if (delay <= 0) return this.connectionReady();
        // unref: a connection waiting for its greeting must not keep a stopping process alive.
        setTimeout(() => this.connectionReady(), delay).unref();
      });
    };

    connection.send = function (this: SMTPConnection, code, data, context) {
      if (code === 421 && data === 'Error: Command line too long') return sayAndClose(this, Replies.lineTooLong, stockSend);
      if (code === 354 && arrivedAfter(this, DATA_LINE)) return sayAndClose(this, Replies.improperPipelining, stockSend);
      const ownCode = typeof data === 'string' && ENHANCED_PREFIX.test(data);
      // The EHLO reply is the one 250 said as several lines: its first is the greeting, the rest features.
      const features = code === 250 && Array.isArray(data) && policy.authOnlyOverTls && !this.secure ? data.filter((line, i) => i === 0 || !/^AUTH\b/i.test(line)) : data;
      stockSend.call(this, code, features, ownCode ? false : context);
    };

    connection._onCommand = function (this: SMTPConnection, command, callback) {
      if (SOURCE_ROUTE.test(command.toString('latin1'))) {
        const r = Replies.sourceRoute;
        stockSend.call(this, r.code, `${r.enhanced} ${r.text}`, false);
        return callback?.();
      }
      stockOnCommand.call(this, command, callback);
    };

    connection.handler_QUIT = function (this: SMTPConnection, command, callback) {
      stockQuit.call(this, command, callback);
      const socket = this._socket;
      // The 221 is in the kernel's hands (nothing left in Node's buffer): a close sends it, then the FIN.
      if (!this.secure && !socket.destroyed && socket.writableLength === 0 && !arrivedAfter(this, QUIT_LINE)) socket.destroy();
    };

    // A STARTTLS upgrade makes a new parser: it remembers its chunks too.
    connection._createParser = function (this: SMTPConnection) {
      return rememberChunks(stockCreateParser.call(this));
    };
    if (connection._parser) rememberChunks(connection._parser);
  }
}

function sayAndClose(connection: SMTPConnection, reply: SmtpReply, send: SMTPConnection['send']): void {
  send.call(connection, reply.code, `${reply.enhanced} ${reply.text}`, false);
  connection.close();
}

/**
 * Whether the client sent more after the command being answered (the last `line` of the chunk being
 * parsed): behind it in that chunk, in the parser or in the socket. For DATA, message content that came
 * before the 354.
 */
function arrivedAfter(connection: SMTPConnection, line: RegExp): boolean {
  const parser = connection._parser as Parser | false;
  const current = parser ? parser[CHUNK] : undefined;
  // Bytes already waiting behind the chunk being parsed, in the socket or in the parser's queue (whose
  // length counts the chunk in hand too).
  const queued = (parser ? parser.writableLength : 0) - (current?.length ?? 0);
  if (connection._socket.readableLength > 0 || queued > 0) return true;
  const chunk = current?.toString('latin1') ?? '';
  // The line is the last command this chunk had for the parser; anything after it came early.
  line.lastIndex = 0;
  let end = -1;
  for (let hit = line.exec(chunk); hit; hit = line.exec(chunk)) end = hit.index + hit[0].length;
  return end !== -1 && end < chunk.length;
}
