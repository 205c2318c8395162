// BENCH_ONLY=twin: this build's relay and another (BENCH_TWIN_LAUNCHER: another checkout's
// bin/tenant-relay, or a launcher script that adds V8 flags) side by side, each with its own sink and its
// own client (a new connection per message, conc 1 unless BENCH_TWIN_CONC), loaded at the same time
// for BENCH_TWIN_SECONDS a round. Both see the same minutes of this machine, whose speed moves by 20-30 %
// between runs (BENCH_ONLY=compare alternates relays and sees that); the flip (BENCH_ONLY=flip) sees
// both modes in one process, but not a change of process flags, a GC effect that builds up over seconds,
// or two builds. Without BENCH_TWIN_LAUNCHER the other relay is this build too: the A/A that says how
// far the two seats differ (0.971 to 1.012 here). The seats are not alike (which relay starts first and is
// loaded first, which sink it sends to), and a change measured from both seats leaned by about 1.5 % to
// the seat: so each build takes each seat in turn, a pass each (BENCH_TWIN_SEATS=fixed: one pass, this
// build in the first seat), and the result is the geometric mean of the two passes' medians, which
// cancels a lean that stays the same. The load is our client only: smtp-source cannot be run twice at
// once against a time budget here; its figures come from the goal cells.
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
  /** The other build in the first seat (started, loaded and given the bench's own sink first). */
  readonly otherFirst: boolean;
  /** Starts a queue-mode relay with its spool in `dir`, forwarding to `sinkPort`, through `launcher`. */
  readonly start: (dir: string, sinkPort: number, launcher: string | undefined) => Promise<RelayProcess>;
}

interface Round {
  readonly thisMs: number;
  readonly otherMs: number;
}

/** One pass: its rounds, with the other build in the first seat or the second. */
export interface Pass {
  readonly otherFirst: boolean;
  readonly rounds: readonly Round[];
}

export async function twinScenario(sink: Sink, o: TwinOptions): Promise<Pass> {
  const secondSink = await startSink();
  const dirs = ['first', 'second'].map((seat) => fs.mkdtempSync(path.join(o.tmp, `twin-${seat}-`)));
  // Seat 0 is started and loaded first and sends to the bench's sink.
  const launchers = o.otherFirst ? [o.otherLauncher, undefined] : [undefined, o.otherLauncher];
  const thisSeat = o.otherFirst ? 1 : 0;
  const relays: RelayProcess[] = [];
  try {
    relays.push(await o.start(dirs[0] ?? '', sink.port, launchers[0]));
    relays.push(await o.start(dirs[1] ?? '', secondSink.port, launchers[1]));
    const load = (relay: RelayProcess, seconds: number) => runLoad({ port: relay.port, concurrency: o.concurrency, workload: 'per-message', message: message(o.sizeKb), from: FROM, to: TO, seconds });
    // Warmed up together, as they are then measured.
    await Promise.all(relays.map((r) => load(r, Math.min(15, o.seconds))));
    const rounds: Round[] = [];
    for (let i = 0; i < o.rounds; i++) {
      const before = relays.map((r) => r.cpuSeconds());
      const runs = await Promise.all(relays.map((r) => load(r, o.seconds)));
      const ms = relays.map((r, j) => ((r.cpuSeconds() - (before[j] ?? 0)) * 1000) / Math.max(1, runs[j]?.accepted ?? 0));
      rounds.push({ thisMs: ms[thisSeat] ?? Number.NaN, otherMs: ms[1 - thisSeat] ?? Number.NaN });
    }
    return { otherFirst: o.otherFirst, rounds };
  } finally {
    await Promise.all(relays.map((r) => r.stop()));
    await secondSink.stop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function twinTable(passes: readonly Pass[], o: Pick<TwinOptions, 'otherLauncher' | 'sizeKb' | 'concurrency' | 'seconds'>): string {
  const lines = [`two relays side by side, ${o.sizeKb} KB, conc ${o.concurrency}, ${o.seconds} s rounds: this build and ${o.otherLauncher ?? 'this build again (A/A)'}`];
  const medians: number[] = [];
  for (const pass of passes) {
    const ratios = pass.rounds.map((r) => r.otherMs / r.thisMs);
    medians.push(median(ratios));
    lines.push(`  ${pass.otherFirst ? 'the other build' : 'this build'} in the first seat:`);
    lines.push(...pass.rounds.map((r, i) => `    round ${i + 1}: CPU ms a message, this ${r.thisMs.toFixed(3)}, other ${r.otherMs.toFixed(3)}, other/this ${(r.otherMs / r.thisMs).toFixed(3)}`));
    lines.push(`    other/this: median ${median(ratios).toFixed(3)} (${ratios.map((x) => x.toFixed(3)).join(', ')})`);
  }
  if (medians.length === 2) lines.push(`  other/this, both seats: ${Math.sqrt((medians[0] ?? 1) * (medians[1] ?? 1)).toFixed(3)} (the geometric mean of the two passes' medians)`);
  return lines.join('\n');
}
