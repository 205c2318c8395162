// BENCH_ONLY=warmup: how a freshly started relay's cost per message falls as V8 optimizes it. One new
// queue-mode relay, 1 KB messages at concurrency 1, a new connection each, in back-to-back windows; each
// window's delivered msgs/s, the relay's CPU per message and the client's p50. It is what BENCH_WARMUP is
// sized from: V8 compiles the per-message functions with its top tier only after some tens of thousands
// of messages, and a window measured before that prices in a start that a relay running for days paid once.
import type { RelayProcess, Sink } from './processes.js';
import { measureBench } from './throughput.js';

export interface WarmupWindow {
  /** Messages the relay had accepted when this window ended. */
  readonly messagesSoFar: number;
  readonly deliveredPerSec: number;
  readonly cpuMsPerMessage: number | undefined;
  readonly p50Ms: number | undefined;
}

export async function warmupCurve(relay: RelayProcess, sink: Sink, windows: number, windowSeconds: number): Promise<WarmupWindow[]> {
  const target = { path: 'queue' as const, port: relay.port, relay };
  const out: WarmupWindow[] = [];
  let messagesSoFar = 0;
  for (let i = 0; i < windows; i++) {
    const r = await measureBench(target, sink, { workload: 'per-message', sizeKb: 1, concurrency: 1, seconds: windowSeconds, settleMs: 0 });
    messagesSoFar += Math.round(r.acceptedPerSec * windowSeconds);
    out.push({ messagesSoFar, deliveredPerSec: r.deliveredPerSec, cpuMsPerMessage: r.cpuMsPerMessage, p50Ms: r.p50Ms });
  }
  return out;
}

export function warmupTable(rows: readonly WarmupWindow[], windowSeconds: number): string {
  const fmt = (n: number | undefined, digits: number) => (n === undefined ? '-' : n.toFixed(digits));
  const lines = [
    `a fresh queue-mode relay, 1 KB, a new connection per message, concurrency 1, ${windowSeconds} s windows from its start`,
    `${'messages so far'.padStart(16)}${'msgs/s'.padStart(9)}${'CPU ms/msg'.padStart(12)}${'p50 ms'.padStart(9)}`,
  ];
  for (const r of rows) lines.push(`${String(r.messagesSoFar).padStart(16)}${fmt(r.deliveredPerSec, 0).padStart(9)}${fmt(r.cpuMsPerMessage, 3).padStart(12)}${fmt(r.p50Ms, 2).padStart(9)}`);
  return lines.join('\n');
}
