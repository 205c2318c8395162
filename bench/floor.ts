// BENCH_ONLY=floor: where the relay's CPU per message goes, by layer. The floor relay (floor-relay.ts: the
// relay's guarantees, no library and none of the relay's own work) with the relay's libraries put back
// one at a time, then both, then the relay itself, in alternated rounds (this machine's speed moves by a
// third between runs): each a fresh process, warmed up, then a new connection per message from our client
// and from smtp-source. The differences between the medians are what each layer costs.
import fs from 'node:fs';
import path from 'node:path';
import { median } from './cold-start.js';
import { type RelayProcess, type Sink, startFloorRelay } from './processes.js';
import { smtpSourceInstalled } from './smtp-source.js';
import { type Generator, measureBench, measureSmtpSource, type Scenario, smtpSourceCount, type Target } from './throughput.js';

export interface FloorOptions {
  readonly rounds: number;
  readonly sizeKb: number;
  readonly concurrency: number;
  readonly seconds: number;
  readonly tmp: string;
  /** Starts the relay in queue mode with its spool in `dir`. */
  readonly startRelay: (dir: string) => Promise<RelayProcess>;
  readonly warmUp: (port: number) => Promise<void>;
}

const STEPS = [
  { name: 'floor (node:net, node:fs)', layers: [] },
  { name: '+ the inbound SMTP layer', layers: ['inbound'] },
  { name: "+ relay's SMTP client", layers: ['client'] },
  { name: '+ both', layers: ['inbound', 'client'] },
  { name: 'the relay (queue mode)', layers: undefined },
] as const;

interface Measured {
  readonly step: string;
  readonly generator: Generator;
  readonly cpuMsPerMessage: number;
  readonly deliveredPerSec: number;
}

export async function floorScenario(sink: Sink, o: FloorOptions): Promise<Measured[]> {
  const rows: Measured[] = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const step of round % 2 === 0 ? STEPS : [...STEPS].reverse()) {
      const dir = fs.mkdtempSync(path.join(o.tmp, 'floor-'));
      const server = step.layers ? await startFloorRelay(sink.port, dir, step.layers) : await o.startRelay(dir);
      try {
        await o.warmUp(server.port);
        const target: Target = { path: step.layers ? 'floor' : 'queue', port: server.port, cpuSeconds: () => server.cpuSeconds() };
        const scenario: Scenario = { workload: 'per-message', sizeKb: o.sizeKb, concurrency: o.concurrency, seconds: o.seconds, settleMs: 300 };
        const ours = await measureBench(target, sink, scenario);
        const runs = [ours];
        if (smtpSourceInstalled()) runs.push(await measureSmtpSource(target, sink, scenario, smtpSourceCount(ours.acceptedPerSec, o.seconds)));
        for (const r of runs) rows.push({ step: step.name, generator: r.generator, cpuMsPerMessage: r.cpuMsPerMessage ?? Number.NaN, deliveredPerSec: r.deliveredPerSec });
      } finally {
        await server.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return rows;
}

export function floorTable(rows: readonly Measured[], o: Pick<FloorOptions, 'rounds' | 'sizeKb' | 'concurrency'>): string {
  const generators = [...new Set(rows.map((r) => r.generator))];
  const lines = [
    `where the CPU goes: ${o.sizeKb} KB, a new connection per message, concurrency ${o.concurrency}, ${o.rounds} alternated rounds; medians (CPU ms per message, then msgs/s), for ${generators.join(' / ')}; then each round's CPU`,
    `${'step'.padEnd(30)}${generators.map((g) => `${g} ms`.padStart(16)).join('')}${generators.map((g) => `${g} /s`.padStart(16)).join('')}   rounds`,
  ];
  const fmt = (n: number, digits: number) => (Number.isNaN(n) ? '-' : n.toFixed(digits));
  for (const { name } of STEPS) {
    const of = (g: Generator) => rows.filter((r) => r.step === name && r.generator === g);
    const cpu = generators.map((g) => fmt(median(of(g).map((r) => r.cpuMsPerMessage)), 2).padStart(16)).join('');
    const rate = generators.map((g) => fmt(median(of(g).map((r) => r.deliveredPerSec)), 0).padStart(16)).join('');
    const rounds = generators.map((g) => of(g).map((r) => fmt(r.cpuMsPerMessage, 2)).join(' ')).join(' | ');
    lines.push(`${name.padEnd(30)}${cpu}${rate}   ${rounds}`);
  }
  return lines.join('\n');
}
