// BENCH_ONLY=twin: this build's relay and another (BENCH_TWIN_LAUNCHER: another checkout's
// bin/tenant-relay, or a launcher script that adds V8 flags) side by side, each with its own sink and its
// own client (a new connection per message, conc 1 unless BENCH_TWIN_CONC), loaded at the same time
// for BENCH_TWIN_SECONDS a round. Both see the same minutes of this machine, whose speed moves by 20-30 %
// between runs (BENCH_ONLY=compare alternates relays and sees that); the flip (BENCH_ONLY=flip) sees
// both modes in one process, but not a change of process flags, a GC effect that builds up over seconds,
// or two builds. Without BENCH_TWIN_LAUNCHER the other relay is this build too: the A/A that says how
// far the two seats differ (about 1-3 % here). The load is our client only: smtp-source cannot be run
// twice at once against a time budget here; its figures come from the goal cells.
import fs from 'node:fs';
import path from 'node:path';
import { median } from './cold-start.js';
import { runLoad } from './load.js';
import { type RelayProcess, type Sink, startSink } from './processes.js';
import { FROM, message, TO } from './throughput.js';

export interface TwinOptions {
  readonly otherLauncher: string | undefined;
  readonly sizeKb: number;
  readonly concurrency: number;
  readonly rounds: number;
  readonly seconds: number;
  readonly tmp: string;
  /** Starts a queue-mode relay with its spool in `dir`, forwarding to `sinkPort`, through `launcher`. */
  readonly start: (dir: string, sinkPort: number, launcher: string | undefined) => Promise<RelayProcess>;
}

interface Round {
  readonly thisMs: number;
  readonly otherMs: number;
}

export async function twinScenario(sink: Sink, o: TwinOptions): Promise<Round[]> {
  const otherSink = await startSink();
  const dirs = ['this', 'other'].map((name) => fs.mkdtempSync(path.join(o.tmp, `twin-${name}-`)));
  const relays: RelayProcess[] = [];
  try {
    relays.push(await o.start(dirs[0] ?? '', sink.port, undefined));
    relays.push(await o.start(dirs[1] ?? '', otherSink.port, o.otherLauncher));
    const load = (relay: RelayProcess, seconds: number) => runLoad({ port: relay.port, concurrency: o.concurrency, workload: 'per-message', message: message(o.sizeKb), from: FROM, to: TO, seconds });
    // Warmed up together, as they are then measured.
    await Promise.all(relays.map((r) => load(r, Math.min(15, o.seconds))));
    const rounds: Round[] = [];
    for (let i = 0; i < o.rounds; i++) {
      const before = relays.map((r) => r.cpuSeconds());
      const runs = await Promise.all(relays.map((r) => load(r, o.seconds)));
      const ms = relays.map((r, j) => ((r.cpuSeconds() - (before[j] ?? 0)) * 1000) / Math.max(1, runs[j]?.accepted ?? 0));
      rounds.push({ thisMs: ms[0] ?? Number.NaN, otherMs: ms[1] ?? Number.NaN });
    }
    return rounds;
  } finally {
    await Promise.all(relays.map((r) => r.stop()));
    await otherSink.stop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function twinTable(rounds: readonly Round[], o: Pick<TwinOptions, 'otherLauncher' | 'sizeKb' | 'concurrency' | 'seconds'>): string {
  const ratios = rounds.map((r) => r.otherMs / r.thisMs);
  return [
    `two relays side by side, ${o.sizeKb} KB, conc ${o.concurrency}, ${o.seconds} s rounds: this build and ${o.otherLauncher ?? 'this build again (A/A)'}`,
    ...rounds.map((r, i) => `  round ${i + 1}: CPU ms a message, this ${r.thisMs.toFixed(3)}, other ${r.otherMs.toFixed(3)}, other/this ${(r.otherMs / r.thisMs).toFixed(3)}`),
    `  other/this: median ${median(ratios).toFixed(3)} (${ratios.map((x) => x.toFixed(3)).join(', ')})`,
  ].join('\n');
}
