// A relay started from YAML through the real loader, listening on an ephemeral loopback port, with its
// log lines kept for the test to read.
import { Writable } from 'node:stream';
import nodemailer from 'nodemailer';
import pino from 'pino';
import { parseConfig } from '../../config/load.js';
import { type RunningRelay, startRelay } from '../../relay/relay.js';

export interface TestRelay {
  readonly port: number;
  readonly relay: RunningRelay;
  readonly logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export async function startTestRelay(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<TestRelay> {
  const text = /^listen:/m.test(yaml) ? yaml : `listen: [{ host: 127.0.0.1, port: 0 }]\n${yaml}`;
  const config = parseConfig(text, 'test.yaml', env);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const relay = await startRelay(config, { logger: pino({ level: 'debug' }, sink) });
  const port = relay.addresses[0]?.port ?? 0;
  return { port, relay, logs, close: () => relay.close(0) };
}

export interface SendOptions {
  readonly from: string;
  readonly to: string | string[];
  readonly raw?: Buffer | string;
  readonly auth?: { user: string; pass: string };
}

/** Sends like an unchanged app would: nodemailer pointed at the relay, plain SMTP on loopback. */
export async function sendThrough(port: number, o: SendOptions) {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    ...(o.auth ? { auth: o.auth } : {}),
    logger: false,
  });
  try {
    const to = Array.isArray(o.to) ? o.to : [o.to];
    const raw = o.raw ?? `From: <${o.from || 'mailer-daemon@example.org'}>\r\nTo: ${to.join(', ')}\r\nSubject: test\r\n\r\nHello.\r\n`;
    return await transport.sendMail({ envelope: { from: o.from, to }, raw: Buffer.isBuffer(raw) ? raw : Buffer.from(raw) });
  } finally {
    transport.close();
  }
}

/** The reply line a refused send carried, e.g. "553 5.7.1 Sender belongs to ...". */
export async function replyOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    const e = err as { response?: string; message: string };
    return e.response ?? e.message;
  }
}
