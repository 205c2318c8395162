// BENCH_ONLY=compare: this checkout's relay against another build of it (BENCH_COMPARE_ROOT, a checkout
// with its own `npm ci && npm run build`), in alternated runs: this machine's speed moves by a third
// between runs, which hides a change of a few percent in any one pair of figures. Each round starts a fresh
// relay from each root (the order swapped every round), warms it up, and measures a new connection per
// message at each concurrency, from our client and from smtp-source; medians over the rounds.
import path from 'node:path';
import { median } from './cold-start.js';
import type { RelayProcess, Sink } from './processes.js';
import { smtpSourceInstalled } from './smtp-source.js';
import { measureBench, measureSmtpSource, type Row, type Scenario, smtpSourceCount } from './throughput.js';

export interface CompareOptions {
  readonly otherRoot: string;
  readonly rounds: number;
  readonly sizeKb: number;
  readonly concurrency: readonly number[];
  readonly seconds: number;
  /** Starts one relay through a launcher (bin/tenant-relay of a root). */
  readonly start: (launcher: string) => Promise<RelayProcess>;
  readonly warmUp: (port: number) => Promise<void>;
}

type Measured = Pick<Row, 'generator' | 'concurrency' | 'deliveredPerSec' | 'p50Ms' | 'cpuMsPerMessage'> & { readonly build: 'this' | 'other' };

export async function compareScenario(sink: Sink, o: CompareOptions): Promise<Measured[]> {
  const builds = [
    { build: 'this' as const, launcher: path.resolve('bin/tenant-relay') },
    { build: 'other' as const, launcher: path.join(path.resolve(o.otherRoot), 'bin/tenant-relay') },
  ];
  const rows: Measured[] = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const { build, launcher } of round % 2 === 0 ? builds : [...builds].reverse()) {
      const relay = await o.start(launcher);
      try {
        await o.warmUp(relay.port);
        const target = { path: 'queue' as const, port: relay.port, relay };
        for (const concurrency of o.concurrency) {
          const scenario: Scenario = { workload: 'per-message', sizeKb: o.sizeKb, concurrency, seconds: o.seconds, settleMs: 300 };
          const ours = await measureBench(target, sink, scenario);
          rows.push({ build, ...pick(ours) });
          if (!smtpSourceInstalled()) continue;
          const count = smtpSourceCount(ours.acceptedPerSec, o.seconds);
          rows.push({ build, ...pick(await measureSmtpSource(target, sink, scenario, count)) });
        }
      } finally {
        await relay.stop();
      }
    }
  }
  return rows;
}

const pick = (r: Row) => ({ generator: r.generator, concurrency: r.concurrency, deliveredPerSec: r.deliveredPerSec, ...(r.p50Ms === undefined ? {} : { p50Ms: r.p50Ms }), ...(r.cpuMsPerMessage === undefined ? {} : { cpuMsPerMessage: r.cpuMsPerMessage }) });

const fmt = (n: number, digits: number) => (Number.isNaN(n) ? '-' : n.toFixed(digits));

export function compareTable(rows: readonly Measured[], o: Pick<CompareOptions, 'otherRoot' | 'rounds' | 'sizeKb'>): string {
  const lines = [
    `this build against ${o.otherRoot}: a new connection per message, ${o.sizeKb} KB, queue mode, ${o.rounds} alternated rounds; medians, then each round`,
    `${'generator'.padEnd(12)}${'conc'.padStart(5)}  ${'measure'.padEnd(11)}${'this'.padStart(8)}${'other'.padStart(8)}${'this/other'.padStart(12)}   rounds: this | other`,
  ];
  const measures = [
    ['msgs/s', 'deliveredPerSec', 0],
    ['CPU ms/msg', 'cpuMsPerMessage', 2],
    ['p50 ms', 'p50Ms', 2],
  ] as const;
  for (const key of new Set(rows.map((r) => `${r.generator}|${r.concurrency}`))) {
    const [generator = '', conc = ''] = key.split('|');
    const of = (build: 'this' | 'other') => rows.filter((r) => r.build === build && `${r.generator}|${r.concurrency}` === key);
    for (const [label, field, digits] of measures) {
      const mine = of('this').map((r) => r[field] ?? Number.NaN);
      const theirs = of('other').map((r) => r[field] ?? Number.NaN);
      if (mine.every(Number.isNaN)) continue;
      const [a, b] = [median(mine), median(theirs)];
      const each = (values: number[]) => values.map((v) => fmt(v, digits)).join(' ');
      lines.push(`${generator.padEnd(12)}${conc.padStart(5)}  ${label.padEnd(11)}${fmt(a, digits).padStart(8)}${fmt(b, digits).padStart(8)}${`${fmt(a / b, 2)}x`.padStart(12)}   ${each(mine)} | ${each(theirs)}`);
    }
  }
  return lines.join('\n');
}
