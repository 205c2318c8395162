// Postfix's own load generator, smtp-source, when Postfix is installed: a client nobody here wrote, so the
// figures do not depend on our load generator's habits. Count-based: the caller sizes the count to last
// about as long as the same scenario with our generator. Bounded by a deadline; killed by its PID after.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Workload } from './load.js';

const SMTP_SOURCE = '/usr/sbin/smtp-source';

export function smtpSourceInstalled(): boolean {
  return fs.existsSync(SMTP_SOURCE);
}

export interface SmtpSourceRun {
  readonly port: number;
  readonly concurrency: number;
  readonly workload: Workload;
  /** Payload bytes (smtp-source adds its own few header lines). */
  readonly bytes: number;
  readonly count: number;
  readonly from: string;
  readonly to: string;
  readonly timeoutMs?: number;
}

/** Runs `smtp-source` to the end; resolves with the seconds it took (it exits once every message was answered). */
export function runSmtpSource(o: SmtpSourceRun): Promise<{ seconds: number; ok: boolean }> {
  // -d: keep the session for the next message (reuse); without it, a new connection per message.
  const args = ['-s', String(o.concurrency), '-m', String(o.count), '-l', String(o.bytes), '-f', o.from, '-t', o.to, '-M', 'bench.client', ...(o.workload === 'reuse' ? ['-d'] : []), `127.0.0.1:${o.port}`];
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(SMTP_SOURCE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let errors = '';
    child.stderr.on('data', (d) => {
      errors += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) process.stderr.write(`  smtp-source exited with ${code}: ${errors.trim().split('\n')[0] ?? ''}\n`);
      resolve({ seconds: (performance.now() - started) / 1000, ok: code === 0 });
    });
  });
}
