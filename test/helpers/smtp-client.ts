// A raw SMTP client for what nodemailer would refuse to send: odd addresses, broken sessions.
import net from 'node:net';
import tls from 'node:tls';

export interface RawSession {
  /** Writes bytes as they are (add \r\n yourself) and resolves with the next complete reply. */
  send(text: string | Buffer): Promise<string>;
  /** Writes bytes without waiting for anything. */
  write(text: string | Buffer): void;
  /** The next complete reply. */
  reply(): Promise<string>;
  /** The greeting, already read. */
  readonly greeting: string;
  close(): void;
}

export interface RawSessionOptions {
  /** Upgrade with STARTTLS right after EHLO, trusting this CA. */
  readonly starttlsCa?: string;
  /** Bytes written as soon as the connection opens, before the greeting (an early talker). */
  readonly talkFirst?: string;
}

export async function openRawSession(port: number, options: RawSessionOptions = {}): Promise<RawSession> {
  let socket: net.Socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  if (options.talkFirst) socket.write(options.talkFirst);
  let buffer = '';
  let waiting: ((reply: string) => void) | undefined;
  const tryDeliver = () => {
    // A reply is complete at a line "NNN text" (a space after the code), after any "NNN-" lines.
    const m = /(^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(buffer);
    if (!m || !waiting) return;
    const end = m.index + m[0].length;
    const reply = buffer.slice(0, end).trim();
    buffer = buffer.slice(end);
    const w = waiting;
    waiting = undefined;
    w(reply);
  };
  let closed = false;
  const closedReply = () => `closed${buffer ? `: ${buffer.trim()}` : ''}`;
  const listen = (s: net.Socket) => {
    s.on('data', (d) => {
      buffer += d.toString('latin1');
      tryDeliver();
    });
    s.on('error', () => {});
    // One listener a socket (not one a reply): a waiting reply that will never come is "closed".
    s.on('close', () => {
      closed = true;
      const w = waiting;
      waiting = undefined;
      w?.(closedReply());
    });
  };
  listen(socket);
  const next = () =>
    new Promise<string>((resolve) => {
      waiting = resolve;
      tryDeliver();
      if (closed && waiting === resolve) {
        waiting = undefined;
        resolve(closedReply());
      }
    });
  const greeting = await next();
  const send = (text: string | Buffer) => {
    const reply = next();
    socket.write(text);
    return reply;
  };
  if (options.starttlsCa) {
    await send('EHLO client.test\r\n');
    const ready = await send('STARTTLS\r\n');
    if (!/^220 /.test(ready)) throw new Error(`STARTTLS refused: ${ready}`);
    socket.removeAllListeners('data');
    const secure = tls.connect({ socket, ca: options.starttlsCa, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    socket = secure;
    listen(socket);
  }
  return {
    greeting,
    send,
    write: (text) => socket.write(text),
    reply: next,
    close: () => socket.destroy(),
  };
}

/** Writes bytes one at a time, each in its own TCP segment as far as Node allows. */
export async function writeByteByByte(session: RawSession, text: string): Promise<string> {
  const reply = session.reply();
  for (const ch of text) {
    session.write(Buffer.from(ch, 'latin1'));
    await new Promise((r) => setImmediate(r));
  }
  return reply;
}

/** A session that has said EHLO, MAIL FROM, RCPT TO and DATA; resolves with the reply to DATA (354). */
export async function openDataSession(port: number, from = 'a@example.com', to = 'b@example.com'): Promise<{ session: RawSession; dataReply: string }> {
  const session = await openRawSession(port);
  await session.send('EHLO client.test\r\n');
  await session.send(`MAIL FROM:<${from}>\r\n`);
  await session.send(`RCPT TO:<${to}>\r\n`);
  return { session, dataReply: await session.send('DATA\r\n') };
}
