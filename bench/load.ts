// The load generator: `concurrency` clients on loopback, each sending the same message until the time is
// up, in one of the two ways apps send:
//   per-message  a new TCP connection for each message: greeting, EHLO, MAIL, RCPT, DATA, QUIT, no
//                pipelining (Django's send_mail, Rails, PHPMailer, smtplib, nodemailer without a pool);
//                latency from the connect to the reply after the final dot
//   reuse        one session kept open, message after message (a pooled client); latency from MAIL FROM
//                to the reply after the final dot
import net from 'node:net';
import { performance } from 'node:perf_hooks';

export type Workload = 'per-message' | 'reuse';

export interface LoadOptions {
  readonly port: number;
  readonly concurrency: number;
  readonly workload: Workload;
  /** The message, CRLF line endings, dot-stuffed, without the final ".\r\n". */
  readonly message: Buffer;
  readonly from: string;
  readonly to: string;
  readonly seconds: number;
  /** A hard cap, so that a very fast path cannot run away with memory for latencies. */
  readonly maxMessages?: number;
}

export interface LoadResult {
  readonly accepted: number;
  readonly refused: number;
  readonly seconds: number;
  /** Per accepted message, milliseconds. */
  readonly latencies: number[];
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const latencies: number[] = [];
  let refused = 0;
  const started = performance.now();
  const deadline = started + o.seconds * 1000;
  const cap = o.maxMessages ?? 1_000_000;
  const body = Buffer.concat([o.message, Buffer.from('.\r\n')]);
  const more = () => performance.now() < deadline && latencies.length + refused < cap;
  /** One transaction on an open session; the latency counts from `t0`. */
  const transaction = async (s: SmtpSession, t0: number) => {
    const mail = await s.command(`MAIL FROM:<${o.from}>\r\n`);
    if (mail.code !== 250) {
      refused++;
      await s.command('RSET\r\n');
      return;
    }
    await s.command(`RCPT TO:<${o.to}>\r\n`, 250);
    await s.command('DATA\r\n', 354);
    const done = await s.command(body);
    if (done.code === 250) latencies.push(performance.now() - t0);
    else refused++;
  };
  const client = async () => {
    if (o.workload === 'per-message') {
      while (more()) {
        const t0 = performance.now();
        const s = await SmtpSession.open(o.port);
        try {
          await s.command('EHLO bench.client\r\n', 250);
          await transaction(s, t0);
          await s.command('QUIT\r\n');
        } finally {
          s.close();
        }
      }
      return;
    }
    const s = await SmtpSession.open(o.port);
    try {
      await s.command('EHLO bench.client\r\n', 250);
      while (more()) await transaction(s, performance.now());
      await s.command('QUIT\r\n');
    } finally {
      s.close();
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, client));
  return { accepted: latencies.length, refused, seconds: (performance.now() - started) / 1000, latencies };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** One SMTP client connection that reads whole (multi-line) replies. */
export class SmtpSession {
  readonly #socket: net.Socket;
  #buffer = '';
  #waiting: ((reply: { code: number; text: string } | Error) => void) | undefined;
  #replies: { code: number; text: string }[] = [];

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => this.#deliver(new Error('connection closed')));
  }

  static async open(port: number, timeoutMs = 10_000): Promise<SmtpSession> {
    const socket = net.connect(port, '127.0.0.1');
    const session = new SmtpSession(socket);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connect timeout')), timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    await session.reply(220);
    return session;
  }

  /** Writes and waits for the reply; with `expect`, a different code is an error. */
  async command(text: string | Buffer, expect?: number): Promise<{ code: number; text: string }> {
    this.#socket.write(text);
    return this.reply(expect);
  }

  reply(expect?: number): Promise<{ code: number; text: string }> {
    const check = (r: { code: number; text: string }) => {
      if (expect !== undefined && r.code !== expect) throw new Error(`expected ${expect}, got: ${r.text}`);
      return r;
    };
    const ready = this.#replies.shift();
    if (ready) return Promise.resolve(check(ready));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('reply timeout')), 60_000);
      this.#waiting = (r) => {
        clearTimeout(timer);
        try {
          if (r instanceof Error) throw r;
          resolve(check(r));
        } catch (err) {
          reject(err as Error);
        }
      };
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #onData(text: string): void {
    this.#buffer += text;
    for (;;) {
      // A reply ends with a line whose fourth character is a space: "250 ok", not "250-ok".
      const match = /(^|\r\n)(\d{3}) [^\r\n]*\r\n/.exec(this.#buffer);
      if (!match) return;
      const end = match.index + match[0].length;
      const reply = { code: Number(match[2]), text: this.#buffer.slice(0, end).trim() };
      this.#buffer = this.#buffer.slice(end);
      if (!this.#deliver(reply)) this.#replies.push(reply);
    }
  }

  #deliver(reply: { code: number; text: string } | Error): boolean {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.(reply);
    return waiting !== undefined;
  }
}
