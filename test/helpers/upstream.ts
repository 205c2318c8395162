// Real SMTP servers playing the tenants' upstreams and the global smarthost, on ephemeral loopback ports.
// Each records what arrived (envelope, bytes, the AUTH user it came with) and can be told to misbehave.
import net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';
import type { SmtpUpstream } from '../../config/types.js';

export interface Received {
  readonly mailFrom: string;
  readonly rcptTo: string[];
  readonly raw: Buffer;
  /** The AUTH user the relay logged in as, if any. */
  readonly user: string | undefined;
  readonly secure: boolean;
}

export interface UpstreamOptions {
  readonly tls?: 'implicit' | 'starttls' | 'none';
  readonly cert?: { readonly key: string; readonly cert: string };
  /** user → password; when set, AUTH is required. */
  readonly users?: Record<string, string>;
  /** Offer AUTH even before TLS (to prove the relay does not use it). */
  readonly allowInsecureAuth?: boolean;
  readonly greeting?: { code: number; text: string };
  /** A reply `[code, text]` to refuse MAIL FROM with, or undefined to accept. */
  readonly mail?: (address: string) => [number, string] | undefined;
  /** Per recipient: a reply `[code, text]` to refuse it, or undefined to accept. */
  readonly rcpt?: (address: string) => [number, string] | undefined;
  /** Wait this long before answering the final dot (a slow server). */
  readonly dataDelayMs?: number;
  /** Refuse the message after the dot (a function: decided per message). */
  readonly data?: [number, string] | (() => [number, string] | undefined);
  /** Leave these out of EHLO, like an old or minimal server. */
  readonly without?: readonly ('8BITMIME' | 'SMTPUTF8')[];
  /**
   * Offer AUTH XOAUTH2 and LOGIN, not PLAIN, like Microsoft 365 and Gmail, and take the bearer tokens
   * `accepts` says are good. A bad token is refused as `refuses` does: Microsoft with a plain
   * 535 5.7.3, Google with a 334 challenge (an error JSON) and then 535 5.7.8.
   */
  readonly xoauth2?: { readonly accepts: (user: string, token: string) => boolean; readonly refuses: 'microsoft' | 'google' };
  /** Answer every AUTH with this, whatever the credentials (535 5.7.139: basic authentication is off). */
  readonly auth?: () => [number, string] | undefined;
  /**
   * Require a client certificate signed by this CA (PEM) at TLS, as an Exchange Online inbound connector
   * does: a client without one, or with another CA's, fails the handshake.
   */
  readonly clientCa?: string;
}

export interface Upstream {
  readonly port: number;
  readonly received: Received[];
  /** Every RCPT TO it was given, taken or refused (a message whose recipients were all refused never reaches DATA). */
  readonly rcpts: string[];
  readonly authAttempts: string[];
  /** Each client certificate a TLS handshake presented: its subject CN and SHA-256 fingerprint. */
  readonly clientCertificates: { readonly cn: string; readonly fingerprint: string }[];
  /** Connections opened to this server so far, and those still open. */
  readonly connections: { opened: number; open: number };
  /** Close every open connection from this side (the relay's pooled ones must log in again). */
  dropConnections(): Promise<void>;
  close(): Promise<void>;
}

/** The id a test upstream gives its n-th message (from 0), like a Postfix queue id. */
export const queueIdOf = (n: number) => `4Tq${String(n).padStart(6, '0')}Z`;

const errorWith = ([code, text]: [number, string]) => Object.assign(new Error(text), { responseCode: code });

export async function startUpstream(options: UpstreamOptions = {}): Promise<Upstream> {
  const received: Received[] = [];
  const rcpts: string[] = [];
  const authAttempts: string[] = [];
  const clientCertificates: { cn: string; fingerprint: string }[] = [];
  const connections = { opened: 0, open: 0 };
  const tls = options.tls ?? 'none';
  const users = options.users;
  const xoauth2 = options.xoauth2;
  const needsAuth = Boolean(users || xoauth2 || options.auth);
  const server = new SMTPServer({
    secure: tls === 'implicit',
    ...(options.cert ?? {}),
    ...(options.clientCa ? { requestCert: true, rejectUnauthorized: true, ca: options.clientCa } : {}),
    onSecure(socket, _session, callback) {
      const peer = (socket as tls.TLSSocket).getPeerCertificate?.();
      if (peer?.subject?.CN) clientCertificates.push({ cn: String(peer.subject.CN), fingerprint: peer.fingerprint256 });
      callback();
    },
    disabledCommands: [...(tls === 'starttls' ? [] : ['STARTTLS']), ...(needsAuth ? [] : ['AUTH'])],
    authOptional: !needsAuth,
    ...(xoauth2 ? { authMethods: ['LOGIN', 'XOAUTH2'] } : {}),
    allowInsecureAuth: options.allowInsecureAuth ?? false,
    // Replies as given, like a real server's: "550 5.1.1 no such user" says its own enhanced code (a stock
    // smtp-server would put one it derives from the number in front of it).
    hideENHANCEDSTATUSCODES: true,
    hide8BITMIME: options.without?.includes('8BITMIME') ?? false,
    hideSMTPUTF8: options.without?.includes('SMTPUTF8') ?? false,
    logger: false,
    onConnect(_session, callback) {
      connections.opened++;
      connections.open++;
      if (options.greeting) return callback(errorWith([options.greeting.code, options.greeting.text]));
      callback();
    },
    onClose() {
      connections.open--;
    },
    onAuth(auth, _session, callback) {
      authAttempts.push(auth.method === 'XOAUTH2' ? `${auth.username ?? ''} (XOAUTH2)` : (auth.username ?? ''));
      const forced = options.auth?.();
      if (forced) return callback(errorWith(forced));
      if (xoauth2 && auth.method === 'XOAUTH2') {
        if (auth.username && auth.accessToken && xoauth2.accepts(auth.username, auth.accessToken)) return callback(null, { user: auth.username });
        if (xoauth2.refuses === 'microsoft') return callback(errorWith([535, '5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod.outlook.com 2026-12-02T00:00:00.000Z 08DD2F4A8C1E2B3D]']));
        // Gmail: a 334 with {"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}, then 535 5.7.8.
        return callback(null, { data: { status: '401', schemes: 'bearer', scope: 'https://mail.google.com/' } } as never);
      }
      if (users && auth.username && users[auth.username] === auth.password) return callback(null, { user: auth.username });
      callback(errorWith([535, 'Invalid credentials']));
    },
    onMailFrom(address, _session, callback) {
      const refusal = options.mail?.(address.address);
      callback(refusal ? errorWith(refusal) : undefined);
    },
    onRcptTo(address, _session, callback) {
      rcpts.push(address.address);
      const refusal = options.rcpt?.(address.address);
      callback(refusal ? errorWith(refusal) : undefined);
    },
    onData(stream, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => {});
      stream.on('end', () => setTimeout(finish, options.dataDelayMs ?? 0));
      const finish = () => {
        const refusal = typeof options.data === 'function' ? options.data() : options.data;
        if (refusal) return callback(errorWith(refusal));
        received.push({
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          user: session.user as string | undefined,
          secure: session.secure,
        });
        // As Postfix answers: the queue id the relay should keep and show.
        callback(null, `2.0.0 Ok: queued as ${queueIdOf(received.length - 1)}`);
      };
    },
  });
  server.on('error', () => {});
  const sockets = new Set<net.Socket>();
  server.server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as net.AddressInfo).port;
  return {
    port,
    received,
    rcpts,
    authAttempts,
    clientCertificates,
    connections,
    dropConnections: async () => {
      const closed = [...sockets].map((s) => new Promise((resolve) => s.once('close', resolve)));
      for (const s of sockets) s.destroy();
      await Promise.all(closed);
      // The client side sees the close on its next turn.
      await new Promise((resolve) => setTimeout(resolve, 20));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.options.closeTimeout = 1; // 0 means "the default, 30 s"
        server.close(() => resolve());
      }),
  };
}

/** Accepts connections and never says a word: the relay's own deadline must fire. */
export async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => closeServer(server, sockets),
  };
}

/** A free loopback port, for a listener the test starts (it may be taken by another in between: rare). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A loopback port that refuses connections, for an upstream that is down: one below 1024, which the
 * system never hands out as an ephemeral port, so no listener opened with port 0 (the relay's own, or a
 * parallel test's) can take it between here and the connect, as a port just released could be.
 */
export async function refusingPort(): Promise<number> {
  for (const port of [9, 1, 19, 39, 47, 79, 97]) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    });
    if (refused) return port;
  }
  throw new Error('no refusing port below 1024 on 127.0.0.1');
}

/**
 * A bare SMTP responder that takes a whole message and then, instead of answering the final dot,
 * drops the connection or stays silent: the "did it arrive?" case.
 */
export async function startDotFaultServer(afterDot: 'drop' | 'silence'): Promise<{ port: number; dots: number; close(): Promise<void> }> {
  const server = await startScriptedServer({ afterDot });
  return {
    port: server.port,
    get dots() {
      return server.sessions.reduce((n, s) => n + s.messages.length, 0);
    },
    close: server.close,
  };
}

/**
 * A script that refuses as a real server does: RCPT TO:<gone...> with 550, and DATA or BDAT when no
 * recipient of the transaction was taken with 554 (the connection is left usable).
 */
export function refusingGoneRecipients(): NonNullable<ScriptedServer['onLine']> {
  let taken = 0;
  return (line, s) => {
    if (line.startsWith('MAIL')) taken = 0;
    if (line.startsWith('RCPT TO:<gone')) return (s.socket.write('550 5.1.1 no such user\r\n'), true);
    if (line.startsWith('RCPT')) taken++;
    return (line === 'DATA' || line.startsWith('BDAT')) && taken === 0 && (s.socket.write('554 5.5.1 no valid recipients\r\n'), true);
  };
}

/** An upstream setting that points at a scripted server (plain, one connection, short deadlines). */
export const scriptedUpstream = (port: number, extra: Partial<SmtpUpstream> = {}): SmtpUpstream => ({
  kind: 'smtp',
  owner: 'platform',
  name: 'scripted',
  host: '127.0.0.1',
  port,
  tls: 'none',
  allowInsecureAuth: false,
  timeoutMs: 3000,
  connectTimeoutMs: 2000,
  maxConnections: 1,
  ...extra,
});

export interface ScriptedSession {
  /** What the client sent in command mode, chunk by chunk as it was read. */
  readonly commandChunks: string[];
  readonly lines: string[];
  /** Each message's bytes after the 354, up to the line of the final dot (its own last line end kept); or its BDAT chunks joined. */
  readonly messages: string[];
  /** Each message's bytes from the 354 to the final dot (included), in the reads they came in. */
  readonly dataChunks: Buffer[][];
  readonly socket: net.Socket;
}

export interface ScriptedServer {
  /** The EHLO keywords after the first line. */
  readonly ehlo?: readonly string[];
  /** Answers a command line itself (true) instead of the default (250, 354 for DATA, 221 for QUIT). */
  readonly onLine?: (line: string, session: ScriptedSession) => boolean;
  /** After each message's 250. */
  readonly afterMessage?: (session: ScriptedSession) => void;
  /** Milliseconds before the greeting. */
  readonly greetingDelayMs?: number;
  /** What the final dot gets: 250 (the default), the connection dropped, or no answer at all. */
  readonly afterDot?: 'answer' | 'drop' | 'silence';
}

/**
 * A bare SMTP server on a loopback socket that answers as a script says (250 to anything else, 354 to
 * DATA, 221 to QUIT) and keeps every byte each client sent: for what smtp-server would not do, or hides.
 * BDAT (RFC 3030) is read as its size says, whether or not CHUNKING was offered: a chunk a script
 * answered itself (onLine) is read and dropped; else 250, and after the LAST one what `afterDot` says.
 */
export async function startScriptedServer(script: ScriptedServer = {}): Promise<{ port: number; sessions: ScriptedSession[]; close(): Promise<void> }> {
  const sessions: ScriptedSession[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    const session: ScriptedSession = { commandChunks: [], lines: [], messages: [], dataChunks: [], socket };
    sessions.push(session);
    let buffer = '';
    let data: string | undefined;
    let bdatChunk: { left: number; last: boolean; answered: boolean } | undefined;
    let chunked = '';
    setTimeout(() => socket.writable && socket.write('220 scripted.test ESMTP\r\n'), script.greetingDelayMs ?? 0);
    socket.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      if (data === undefined) session.commandChunks.push(text);
      else session.dataChunks.at(-1)?.push(chunk);
      buffer += text;
      for (;;) {
        if (bdatChunk) {
          const taken = buffer.slice(0, bdatChunk.left);
          buffer = buffer.slice(taken.length);
          bdatChunk.left -= taken.length;
          if (!bdatChunk.answered) chunked += taken;
          if (bdatChunk.left > 0) return;
          const { last, answered } = bdatChunk;
          bdatChunk = undefined;
          if (answered) continue;
          if (!last) {
            socket.write('250 2.0.0 chunk taken\r\n');
            continue;
          }
          session.messages.push(chunked);
          chunked = '';
          if (script.afterDot === 'drop') return void socket.destroy();
          if (script.afterDot === 'silence') return;
          socket.write('250 2.0.0 taken\r\n');
          script.afterMessage?.(session);
          continue;
        }
        if (data !== undefined) {
          const end = `\r\n${buffer}`.indexOf('\r\n.\r\n');
          if (end === -1) return;
          session.messages.push(buffer.slice(0, Math.max(0, end)));
          buffer = buffer.slice(end + 3);
          data = undefined;
          if (script.afterDot === 'drop') return void socket.destroy();
          if (script.afterDot === 'silence') return;
          socket.write('250 2.0.0 taken\r\n');
          script.afterMessage?.(session);
          continue;
        }
        const eol = buffer.indexOf('\r\n');
        if (eol === -1) return;
        const line = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        session.lines.push(line);
        const bdat = /^BDAT (\d+)( LAST)?$/i.exec(line);
        const answered = script.onLine?.(line, session) ?? false;
        if (bdat) {
          bdatChunk = { left: Number(bdat[1]), last: bdat[2] !== undefined, answered };
          if (answered) chunked = '';
          continue;
        }
        if (answered) continue;
        const verb = line.split(' ')[0]?.toUpperCase();
        if (verb === 'EHLO') socket.write(['scripted.test', ...(script.ehlo ?? ['PIPELINING', '8BITMIME'])].map((k, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${k}\r\n`).join(''));
        else if (verb === 'DATA') {
          data = '';
          session.dataChunks.push([]);
          socket.write('354 go ahead\r\n');
        } else if (verb === 'QUIT') socket.end('221 2.0.0 bye\r\n');
        else socket.write('250 2.0.0 ok\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    sessions,
    close: () => closeServer(server, sessions.map((s) => s.socket)),
  };
}

/** Stops a bare server: its open connections cut, then the listener closed. */
function closeServer(server: net.Server, sockets: Iterable<net.Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}
