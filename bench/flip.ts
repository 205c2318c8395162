// BENCH_ONLY=flip: one relay against itself, switching between two modes every second (flip-hook.ts), under
// a new connection per message from our client. Alternated relays (BENCH_ONLY=compare) move by 20-30 %
// from round to round on this machine; one relay flipping every second sees both modes in the same
// minutes, and moves by about 4 % against itself (BENCH_FLIP_AA=1: the same flip with nothing changed).
// For V8 flags (BENCH_FLIP_ON, BENCH_FLIP_OFF) or a code path an experiment reads from
// `globalThis.benchFlip`; the result is CPU per message in each mode, over the periods inside the load.
// The load is our client for BENCH_SECONDS, or with BENCH_FLIP_GEN=smtp-source Postfix's smtp-source
// sending BENCH_FLIP_COUNT messages (both a new connection per message, no pipelining).
import fs from 'node:fs';
import path from 'node:path';
import { median } from './cold-start.js';
import { runLoad } from './load.js';
import { runSmtpSource } from './smtp-source.js';
import type { RelayProcess, Sink } from './processes.js';
import { FROM, message, TO } from './throughput.js';

export interface FlipOptions {
  readonly sizeKb: number;
  readonly concurrency: number;
  readonly seconds: number;
  /** Postfix's smtp-source sending this many messages, instead of our client for `seconds`. */
  readonly smtpSourceCount?: number;
  readonly start: (env: NodeJS.ProcessEnv) => Promise<RelayProcess>;
  readonly warmUp: (port: number) => Promise<void>;
  readonly dir: string;
}

export interface FlipResult {
  readonly periods: readonly { readonly mode: number; readonly connections: number; readonly cpuMs: number }[];
  /** CPU ms a message in the "off" and "on" modes, over every period counted. */
  readonly off: number;
  readonly on: number;
  /** Each "on" period's CPU a message over the "off" period before it. */
  readonly pairs: readonly number[];
}

export async function flipScenario(sink: Sink, o: FlipOptions): Promise<FlipResult> {
  const file = path.join(o.dir, 'flip.txt');
  const aa = process.env.BENCH_FLIP_AA === '1';
  const relay = await o.start({
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${new URL('./flip-hook.js', import.meta.url).pathname}`,
    BENCH_FLIP_OUT: file,
    BENCH_FLIP_ON: aa ? '' : (process.env.BENCH_FLIP_ON ?? ''),
    BENCH_FLIP_OFF: aa ? '' : (process.env.BENCH_FLIP_OFF ?? ''),
    // A/A: globalThis.benchFlip stays unset too, so an experiment's code path is not switched either.
    BENCH_FLIP_AA: aa ? '1' : '',
  });
  try {
    await o.warmUp(relay.port);
    const from = Date.now();
    if (o.smtpSourceCount) await runSmtpSource({ port: relay.port, concurrency: o.concurrency, workload: 'per-message', bytes: o.sizeKb * 1024, count: o.smtpSourceCount, from: FROM, to: TO, timeoutMs: 600_000 });
    else await runLoad({ port: relay.port, concurrency: o.concurrency, workload: 'per-message', message: message(o.sizeKb), from: FROM, to: TO, seconds: o.seconds });
    const to = Date.now();
    // The first whole period after the load began, to the last one that ended inside it.
    const rows = fs
      .readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ').map(Number) as [number, number, number, number]);
    const periods = rows.filter(([end], i) => i > 0 && (rows[i - 1]?.[0] ?? 0) >= from && end <= to).map(([, mode, connections, cpuMs]) => ({ mode, connections, cpuMs }));
    const per = (mode: number) => {
      const ps = periods.filter((p) => p.mode === mode && p.connections > 0);
      return ps.reduce((n, p) => n + p.cpuMs, 0) / Math.max(1, ps.reduce((n, p) => n + p.connections, 0));
    };
    const pairs: number[] = [];
    for (let i = 1; i < periods.length; i++) {
      const [before, now] = [periods[i - 1], periods[i]];
      if (before && now && now.mode === 1 && before.mode === 0 && now.connections > 0 && before.connections > 0) pairs.push(now.cpuMs / now.connections / (before.cpuMs / before.connections));
    }
    return { periods, off: per(0), on: per(1), pairs };
  } finally {
    await relay.stop();
  }
}

export function flipLine(r: FlipResult, o: Pick<FlipOptions, 'sizeKb' | 'concurrency' | 'seconds' | 'smtpSourceCount'>): string {
  const sorted = [...r.pairs].sort((a, b) => a - b);
  const q = (f: number) => (sorted[Math.floor(f * (sorted.length - 1))] ?? Number.NaN).toFixed(3);
  const what = process.env.BENCH_FLIP_AA === '1' ? 'A/A, nothing flipped' : `on: ${process.env.BENCH_FLIP_ON || 'benchFlip true'}; off: ${process.env.BENCH_FLIP_OFF || 'benchFlip false'}`;
  return [
    `one relay flipping every second (${what}), ${o.sizeKb} KB, conc ${o.concurrency}, ${o.smtpSourceCount ? `${o.smtpSourceCount} messages from smtp-source` : `${o.seconds} s of our client`}, ${r.periods.length} periods:`,
    `  CPU ms a message: on ${r.on.toFixed(3)}, off ${r.off.toFixed(3)}, on/off ${(r.on / r.off).toFixed(3)}; each "on" period over the "off" before it: median ${median(r.pairs).toFixed(3)}, quartiles ${q(0.25)} - ${q(0.75)} (${r.pairs.length} pairs)`,
  ].join('\n');
}
