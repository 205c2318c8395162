// A raw SMTP client for what nodemailer would refuse to send: odd addresses, broken sessions.
import net from 'node:net';

export interface RawSession {
  /** Writes bytes as they are (add \r\n yourself) and resolves with the next complete reply. */
  send(text: string | Buffer): Promise<string>;
  /** The greeting, already read. */
  readonly greeting: string;
  close(): void;
}

export async function openRawSession(port: number): Promise<RawSession> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
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
  socket.on('data', (d) => {
    buffer += d.toString('latin1');
    tryDeliver();
  });
  socket.on('error', () => {});
  const next = () =>
    new Promise<string>((resolve) => {
      waiting = resolve;
      socket.once('close', () => {
        if (waiting === resolve) {
          waiting = undefined;
          resolve(`closed${buffer ? `: ${buffer.trim()}` : ''}`);
        }
      });
      tryDeliver();
    });
  const greeting = await next();
  return {
    greeting,
    send(text) {
      const reply = next();
      socket.write(text);
      return reply;
    },
    close: () => socket.destroy(),
  };
}
