// Throughput and latency, the way apps load a relay: for each workload (a new connection per message,
// or sessions reused), message size and concurrency, the same load goes straight to the sink (the
// ceiling of this machine), through the relay in each mode, and through Postfix on the same sink. It is
// generated twice when Postfix is installed: by our own client (which measures latency), and by
// Postfix's smtp-source, sized to last about as long.
import { performance } from 'node:perf_hooks';
import { median } from './cold-start.js';
import { percentile, runLoad, type Workload } from './load.js';
import type { RelayProcess, Sink } from './processes.js';
import { runSmtpSource } from './smtp-source.js';

export type Path = 'direct' | 'floor' | 'passthrough' | 'queue' | 'postfix';
export type Generator = 'bench' | 'smtp-source';

export interface Row {
  readonly workload: Workload;
  readonly generator: Generator;
  readonly path: Path;
  readonly sizeKb: number;
  readonly concurrency: number;
  readonly acceptedPerSec: number;
  /** Messages that reached the sink within the window, per second of it. */
  readonly deliveredPerSec: number;
  /** Our generator only: per message as the client sees it (see load.ts). */
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  readonly refused: number;
  readonly relayPeakRssMb?: number;
  /** CPU per accepted message, in ms, until the last one arrived: the relay (all its processes and threads), or every Postfix process. */
  readonly cpuMsPerMessage?: number;
  /** The relay's `workers` setting, in the workers scenario. */
  readonly workers?: number;
}

export interface Target {
  readonly path: Path;
  readonly port: number;
  readonly relay?: RelayProcess;
  /** CPU seconds used so far by what serves this path (the relay, or every Postfix process). */
  readonly cpuSeconds?: () => number;
}

const cpuOf = (target: Target) => target.cpuSeconds?.() ?? target.relay?.cpuSeconds();

export const FROM = 'app@acme.bench';
export const TO = 'someone@example.com';

/** A plain message of about `kb` KB: headers an app would send and 76-column text lines. */
export function message(kb: number): Buffer {
  const head = `From: App <${FROM}>\r\nTo: <${TO}>\r\nSubject: Reminder: your appointment\r\nMessage-ID: <bench@acme.bench>\r\nDate: ${new Date().toUTCString()}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n`;
  const line = `${'The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrst'.slice(0, 74)}\r\n`;
  const lines = Math.max(1, Math.ceil((kb * 1024 - head.length) / line.length));
  return Buffer.from(head + line.repeat(lines));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (bounded) until the sink has `count` more messages than `from`. */
async function drain(sink: Sink, from: number, count: number): Promise<void> {
  const started = performance.now();
  while ((await sink.count()) - from < count && performance.now() - started < 30_000) await sleep(20);
}

export interface Scenario {
  readonly workload: Workload;
  readonly sizeKb: number;
  readonly concurrency: number;
  readonly seconds: number;
  /** Pause before each measurement, for the previous one's stragglers (Postfix's queue manager). */
  readonly settleMs: number;
}

/** Our generator, time-bound. */
export async function measureBench(target: Target, sink: Sink, s: Scenario): Promise<Row> {
  await sleep(s.settleMs);
  target.relay?.resetPeak();
  const cpuBefore = cpuOf(target);
  const before = await sink.count();
  const load = await runLoad({ port: target.port, concurrency: s.concurrency, workload: s.workload, message: message(s.sizeKb), from: FROM, to: TO, seconds: s.seconds });
  const deliveredInWindow = (await sink.count()) - before;
  // Until the last accepted message has arrived: its delivery is part of its cost.
  await drain(sink, before, load.accepted);
  const cpu = cpuBefore === undefined ? undefined : (cpuOf(target) ?? 0) - cpuBefore;
  const sorted = [...load.latencies].sort((a, b) => a - b);
  return {
    workload: s.workload,
    generator: 'bench',
    path: target.path,
    sizeKb: s.sizeKb,
    concurrency: s.concurrency,
    acceptedPerSec: load.accepted / load.seconds,
    deliveredPerSec: deliveredInWindow / load.seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    refused: load.refused,
    ...(target.relay ? { relayPeakRssMb: target.relay.memory().peakMb } : {}),
    ...(cpu !== undefined && load.accepted > 0 ? { cpuMsPerMessage: (cpu * 1000) / load.accepted } : {}),
  };
}

/** How many messages smtp-source sends: as many as our client managed in the same time on that path, within bounds. */
export function smtpSourceCount(acceptedPerSec: number, seconds: number): number {
  return Math.round(Math.min(50_000, Math.max(100, acceptedPerSec * seconds)));
}

/** Postfix's smtp-source, `count` messages (smtpSourceCount: sized to last about `seconds`). */
export async function measureSmtpSource(target: Target, sink: Sink, s: Scenario, count: number): Promise<Row> {
  await sleep(s.settleMs);
  target.relay?.resetPeak();
  const cpuBefore = cpuOf(target);
  const before = await sink.count();
  const run = await runSmtpSource({ port: target.port, concurrency: s.concurrency, workload: s.workload, bytes: s.sizeKb * 1024, count, from: FROM, to: TO });
  const deliveredInWindow = (await sink.count()) - before;
  await drain(sink, before, run.ok ? count : 0);
  const cpu = cpuBefore === undefined ? undefined : (cpuOf(target) ?? 0) - cpuBefore;
  return {
    workload: s.workload,
    generator: 'smtp-source',
    path: target.path,
    sizeKb: s.sizeKb,
    concurrency: s.concurrency,
    acceptedPerSec: run.ok ? count / run.seconds : 0,
    deliveredPerSec: deliveredInWindow / run.seconds,
    refused: run.ok ? 0 : count,
    ...(target.relay ? { relayPeakRssMb: target.relay.memory().peakMb } : {}),
    ...(cpu !== undefined && run.ok ? { cpuMsPerMessage: (cpu * 1000) / count } : {}),
  };
}

/**
 * One row from a cell's rounds (BENCH_ROUNDS): each measure is the median of the rounds'. A slow minute
 * on a shared machine then moves one round of one path, not the ratio between two paths.
 */
export function medianRow(rounds: readonly Row[]): Row {
  const first = rounds[0];
  if (!first) throw new Error('medianRow: no rounds');
  const mid = (pick: (r: Row) => number | undefined): number | undefined => {
    const xs = rounds.map(pick).filter((x): x is number => x !== undefined);
    return xs.length === 0 ? undefined : median(xs);
  };
  const optional = (key: 'p50Ms' | 'p99Ms' | 'relayPeakRssMb' | 'cpuMsPerMessage') => {
    const v = mid((r) => r[key]);
    return v === undefined ? {} : { [key]: v };
  };
  return {
    ...first,
    acceptedPerSec: mid((r) => r.acceptedPerSec) ?? 0,
    deliveredPerSec: mid((r) => r.deliveredPerSec) ?? 0,
    refused: rounds.reduce((n, r) => n + r.refused, 0),
    ...optional('p50Ms'),
    ...optional('p99Ms'),
    ...optional('relayPeakRssMb'),
    ...optional('cpuMsPerMessage'),
  };
}

const fmt = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));

/**
 * One table per workload and generator: delivered msgs/s per path, each relay path's ratio to Postfix,
 * and (our generator) the client's p50/p99 latency in ms.
 */
export function throughputTable(rows: readonly Row[]): string {
  const out: string[] = [];
  const groups = [...new Set(rows.map((r) => `${r.workload}|${r.generator}`))];
  for (const group of groups) {
    const [workload, generator] = group.split('|') as [Workload, Generator];
    const inGroup = rows.filter((r) => r.workload === workload && r.generator === generator);
    const latency = generator === 'bench';
    out.push(
      `${workload === 'per-message' ? 'a new connection per message' : 'sessions reused'}, load from ${generator === 'bench' ? "the bench's client (latency in ms, p50/p99)" : "Postfix's smtp-source"}; delivered msgs/s, and x Postfix`,
    );
    // The floor relay (floor-relay.ts) runs with queue mode.
    const paths = (['direct', 'floor', 'passthrough', 'queue', 'postfix'] as Path[]).filter((p) => p !== 'floor' || inGroup.some((r) => r.path === p));
    out.push(`size  conc  ${paths.map((p) => (p === 'direct' || p === 'postfix' ? p.padStart(latency ? 20 : 8) : p.padStart(latency ? 27 : 16))).join('  ')}`);
    const cells = [...new Set(inGroup.map((r) => `${r.sizeKb}|${r.concurrency}`))];
    for (const cell of cells) {
      const [size, conc] = cell.split('|').map(Number) as [number, number];
      const find = (p: Path) => inGroup.find((r) => r.path === p && r.sizeKb === size && r.concurrency === conc);
      const postfix = find('postfix');
      const col = (p: Path) => {
        const r = find(p);
        const lat = latency ? ` ${fmt(r?.p50Ms, 2).padStart(5)}/${fmt(r?.p99Ms, 1).padEnd(5)}` : '';
        const ratio = p === 'floor' || p === 'passthrough' || p === 'queue' ? ` ${postfix && r ? `${(r.deliveredPerSec / postfix.deliveredPerSec).toFixed(2)}x` : '-'}`.padStart(7) : '';
        const text = `${fmt(r?.deliveredPerSec)}${ratio}${lat}`;
        return text.padStart(p === 'direct' || p === 'postfix' ? (latency ? 20 : 8) : latency ? 27 : 16);
      };
      out.push(`${`${size}K`.padStart(4)}  ${String(conc).padStart(4)}  ${paths.map(col).join('  ')}`);
    }
    // CPU per message until the last one arrived (the relay's processes; every Postfix process), and x Postfix's.
    out.push('  CPU ms per message (x Postfix):');
    for (const cell of cells) {
      const [size, conc] = cell.split('|').map(Number) as [number, number];
      const cpu = (p: Path) => inGroup.find((r) => r.path === p && r.sizeKb === size && r.concurrency === conc)?.cpuMsPerMessage;
      const postfixCpu = cpu('postfix');
      const part = (p: Path) => {
        const c = cpu(p);
        if (c === undefined) return undefined;
        // The sink's own CPU on the direct path: a bare responder in Node, the floor any Node server pays.
        if (p === 'direct') return `direct (the sink alone) ${fmt(c, 2)}`;
        return `${p} ${fmt(c, 2)}${p !== 'postfix' && postfixCpu ? ` (${(c / postfixCpu).toFixed(2)}x)` : ''}`;
      };
      out.push(`  ${`${size}K`.padStart(4)}  ${String(conc).padStart(4)}  ${paths.flatMap((p) => part(p) ?? []).join(', ')}`);
    }
    out.push('');
  }
  return out.join('\n');
}
