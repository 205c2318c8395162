// BENCH_ONLY=phases: where the time of one message goes at concurrency 1, as an app that opens a new
// connection per message sees it: connect to the 220 greeting, the reply to EHLO, MAIL, RCPT and DATA,
// the final dot to its 250 (the relay's fsync is in there), QUIT; and from that 250 until the sink has
// the message (the relay's delivery). Sequential messages, one at a time, through each path: straight to
// the sink (this machine's floor for each turn), the queue-mode relay, and Postfix when installed.
import { performance } from 'node:perf_hooks';
import { percentile, SmtpSession } from './load.js';
import type { Sink } from './processes.js';
import { FROM, message, TO } from './throughput.js';

const PHASES = ['connect to 220', 'EHLO', 'MAIL FROM', 'RCPT TO', 'DATA (354)', 'dot to 250', 'QUIT', '250 to arrived'] as const;
type Phase = (typeof PHASES)[number];

export interface PhasesResult {
  readonly messages: number;
  /** Per path, per phase: p50 and p90 in ms. */
  readonly paths: Record<string, Record<Phase, { p50: number; p90: number }>>;
}

export async function phasesScenario(sink: Sink, targets: readonly { name: string; port: number }[], messages = Number(process.env.BENCH_PHASE_MESSAGES ?? 500)): Promise<PhasesResult> {
  const body = Buffer.concat([message(1), Buffer.from('.\r\n')]);
  const paths: PhasesResult['paths'] = {};
  for (const target of targets) {
    const times = new Map<Phase, number[]>(PHASES.map((p) => [p, []]));
    const took = (phase: Phase, since: number) => {
      const now = performance.now();
      times.get(phase)?.push(now - since);
      return now;
    };
    for (let i = 0; i < messages + 50; i++) {
      const warm = i < 50;
      const before = await sink.count();
      let t = performance.now();
      const s = await SmtpSession.open(target.port);
      try {
        const mark = (phase: Phase) => {
          if (!warm) t = took(phase, t);
          else t = performance.now();
        };
        mark('connect to 220');
        await s.command('EHLO bench.client\r\n', 250);
        mark('EHLO');
        await s.command(`MAIL FROM:<${FROM}>\r\n`, 250);
        mark('MAIL FROM');
        await s.command(`RCPT TO:<${TO}>\r\n`, 250);
        mark('RCPT TO');
        await s.command('DATA\r\n', 354);
        mark('DATA (354)');
        await s.command(body, 250);
        mark('dot to 250');
        const accepted = t;
        await s.command('QUIT\r\n');
        mark('QUIT');
        // Bounded: a message that never arrives ends the wait after 10 s.
        const deadline = performance.now() + 10_000;
        while ((await sink.count()) === before && performance.now() < deadline) await new Promise((r) => setImmediate(r));
        if (!warm) times.get('250 to arrived')?.push(performance.now() - accepted);
      } finally {
        s.close();
      }
    }
    const stats = {} as Record<Phase, { p50: number; p90: number }>;
    for (const phase of PHASES) {
      const sorted = [...(times.get(phase) ?? [])].sort((a, b) => a - b);
      stats[phase] = { p50: percentile(sorted, 50), p90: percentile(sorted, 90) };
    }
    paths[target.name] = stats;
  }
  return { messages, paths };
}

export function phasesTable(r: PhasesResult): string {
  const names = Object.keys(r.paths);
  const lines = [`one message at a time, a new connection each, 1 KB (${r.messages} messages; ms, p50/p90; "250 to arrived" counts from the 250, QUIT overlapping)`, `${'phase'.padEnd(16)}${names.map((n) => n.padStart(16)).join('')}`];
  for (const phase of PHASES) lines.push(`${phase.padEnd(16)}${names.map((n) => `${r.paths[n]?.[phase]?.p50.toFixed(2)}/${r.paths[n]?.[phase]?.p90.toFixed(2)}`.padStart(16)).join('')}`);
  return lines.join('\n');
}
