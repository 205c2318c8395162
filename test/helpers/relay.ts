// A relay started from YAML through the real loader, listening on an ephemeral loopback port, with its
// log lines kept for the test to read.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import nodemailer from 'nodemailer';
import pino from 'pino';
import { parseConfig } from '../../config/load.js';
import type { SpoolIo } from '../../relay/queue/spool.js';
import { type RunningRelay, startRelay } from '../../relay/runtime/start-relay.js';

export interface TestRelay {
  readonly port: number;
  /** The temporary spool folder (use `\${SPOOL}` in the YAML to name it). */
  readonly spoolDir: string;
  readonly relay: RunningRelay;
  readonly logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export interface TestRelayOptions {
  /** Drive the queue by hand (scheduler.runDue) instead of on timers. */
  readonly manualScheduler?: boolean;
  readonly spoolIo?: SpoolIo;
  /** How late the outcomes are told to their subscribers (the relay's default when absent). */
  readonly outcomeBatchMs?: number;
}

/**
 * Unless the YAML says otherwise: listen on a free loopback port (SMTP and ops), forward in session
 * (pass-through), and keep any spool in a fresh temporary folder.
 */
export async function startTestRelay(yaml: string, env: NodeJS.ProcessEnv = {}, options: TestRelayOptions = {}): Promise<TestRelay> {
  const spool = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-spool-'));
  const defaults = [
    /^listen:/m.test(yaml) ? '' : 'listen: [{ host: 127.0.0.1, port: 0 }]',
    /^delivery:/m.test(yaml) ? '' : `delivery: { mode: passthrough, spool: { path: ${spool} } }`,
    /^ops:/m.test(yaml) ? '' : 'ops: { port: 0 }',
  ];
  const text = `${defaults.filter(Boolean).join('\n')}\n${yaml.replaceAll('${SPOOL}', spool)}`;
  const config = parseConfig(text, 'test.yaml', env);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const relay = await startRelay(config, { logger: pino({ level: 'debug' }, sink), schedulerTimers: !options.manualScheduler, ...(options.spoolIo ? { spoolIo: options.spoolIo } : {}), ...(options.outcomeBatchMs !== undefined ? { outcomeBatchMs: options.outcomeBatchMs } : {}) });
  const port = relay.addresses[0]?.port ?? 0;
  return {
    port,
    relay,
    // The outcomes come in batches (relay/observe/outcomes.ts): the lines of what waits are written first.
    get logs() {
      relay.outcomes.flush();
      return logs;
    },
    spoolDir: spool,
    close: async () => {
      await relay.close(0);
      fs.rmSync(spool, { recursive: true, force: true });
    },
  };
}

export interface SendOptions {
  readonly from: string;
  readonly to: string | string[];
  readonly raw?: Buffer | string;
  readonly auth?: { user: string; pass: string };
  /** How long to wait for the greeting (nodemailer's 30 s by default): a test that kills a relay under load gives up sooner on a session it took. */
  readonly greetingTimeoutMs?: number;
}

/** Sends like an unchanged app would: nodemailer pointed at the relay, plain SMTP on loopback. */
export async function sendThrough(port: number, o: SendOptions) {
  const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    ...(o.auth ? { auth: o.auth } : {}),
    ...(o.greetingTimeoutMs ? { greetingTimeout: o.greetingTimeoutMs } : {}),
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

/** A relay (scheduler by hand) whose YAML is also written to `dir`/relay.yaml, for the commands that read the config. */
export async function startFileRelay(dir: string, yaml: string): Promise<TestRelay & { readonly configFile: string }> {
  const configFile = path.join(dir, 'relay.yaml');
  fs.writeFileSync(configFile, yaml);
  // Not spread: `logs` is a getter (it writes the lines waiting for their batch first).
  const relay = await startTestRelay(yaml, {}, { manualScheduler: true });
  return Object.assign(Object.create(relay) as typeof relay, { configFile });
}

/** The queue id in a queue-mode 250 ("250 2.0.0 Ok: queued as <id>"). */
export const queuedId = (response: string) => /queued as ([a-z0-9]+)/.exec(response)?.[1] ?? '';
