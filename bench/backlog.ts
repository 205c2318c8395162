// A backlog must not slow the relay: an upstream down for an hour at peak leaves 100,000+ deferred
// messages. This fills a spool with that many deferred messages (a tenant whose upstream is down, next
// attempts spread over the coming hour, as retries are), starts a relay on it, and measures the accept
// rate and the relay's CPU per accepted message against a relay with an empty queue, same load.
//
// This machine's speed moves by 20-30 % from one minute to the next: one load of each, a minute apart,
// measured the minute as much as the backlog (68-103 % over ten runs). So both relays run at once, each
// with its own sink and its own client, and are loaded at the same time (as bench/twin.ts does two
// builds), in two passes with the seats swapped (which relay starts first and sends to the bench's
// sink), each pass's median of `rounds` rounds, the two passes' medians combined by their geometric
// mean. smtp-source cannot run twice at once against a time budget here: under it
// (BENCH_BACKLOG_GENERATOR=smtp-source) the two relays are loaded in turn instead, the order reversed
// each round, and each side's median is compared.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { median } from './cold-start.js';
import { runLoad } from './load.js';
import { newMessageId } from '../relay/ids.js';
import { Spool } from '../relay/queue/spool.js';
import { freePort, type RelayProcess, type Sink, startRelayProcess, startSink } from './processes.js';
import { FROM, type Generator, measureBench, measureSmtpSource, message, type Scenario, smtpSourceCount, TO } from './throughput.js';

/** One relay's figures in one round. */
export interface BacklogSide {
  readonly acceptedPerSec: number;
  readonly cpuMsPerMessage: number;
}

export interface BacklogRound {
  readonly empty: BacklogSide;
  readonly withBacklog: BacklogSide;
  /** Loaded together: the relay with the backlog had the first seat. */
  readonly backlogFirst?: boolean;
}

export interface BacklogResult {
  /** Messages in the backlog. */
  readonly count: number;
  readonly shape: BacklogShape;
  readonly generator: Generator;
  /** `together`: loaded at the same time; `in-turn`: one after the other. */
  readonly loading: 'together' | 'in-turn';
  /** Writing them into the spool (the bench's own time, fsync off, then a sync). */
  readonly fillSeconds: number;
  /** From starting the relay to its listening, with the backlog to read first. */
  readonly startSeconds: number;
  readonly emptyStartSeconds: number;
  readonly rounds: readonly BacklogRound[];
  /** With the backlog over empty: accept rate and CPU a message. */
  readonly acceptRatio: number;
  readonly cpuRatio: number;
}

export type BacklogShape = 'deferred' | 'waiting';

/** Writes `count` messages of tenant `down`, none due during the bench, into the spool at `dir`. */
async function fillSpool(dir: string, count: number, shape: BacklogShape): Promise<void> {
  const spool = new Spool(dir, { fsync: false });
  await spool.open();
  const bytes = message(1);
  const now = Date.now();
  const write = async (i: number) => {
    const id = newMessageId();
    // Due between 10 and 70 minutes from now: none falls due during the bench.
    const accepted = { v: 1 as const, id, createdAt: now - 3_600_000, mailFrom: 'app@down.bench', tenant: 'down', recipients: [{ address: `r${i}@example.com`, status: 'pending' as const }], attempts: 0, nextAttemptAt: now - 3_600_000 };
    const due = now + 600_000 + ((i * 7919) % 3_600_000);
    if (shape === 'waiting') {
      await spool.commit({ ...accepted, nextAttemptAt: due }, [bytes]);
      return;
    }
    const committed = await spool.commit(accepted, [bytes]);
    // Its first attempt failed: deferred, as the relay does it (the update moves it out of the journal).
    await spool.update({ ...committed, recipients: committed.recipients.map((r) => ({ ...r, reply: '451 4.4.1 Upstream down is unreachable' })), attempts: 1, nextAttemptAt: due, firstTempFailureAt: now - 3_600_000, lastError: '451 4.4.1 Upstream down is unreachable' });
  };
  const BATCH = 64;
  for (let i = 0; i < count; i += BATCH) await Promise.all(Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => write(i + j)));
  // Deferred, nothing is left to move out (each update did it); waiting, the moves of the older segments'.
  const deadline = performance.now() + 600_000;
  while (spool.movingOut > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await spool.close();
  // On disk before the relay starts, as a backlog that grew over an hour would be: the kernel's writeback
  // of the fill (written without fsync) otherwise lands in the measured seconds, beside the relay's fsyncs.
  execFileSync('sync');
}

/** The relay's config for a spool in `dir`, forwarding to the sink at `sinkPort`, with `extra` tenants. */
export type BacklogYaml = (dir: string, sinkPort: number, extra: string) => (port: number) => string;

export interface BacklogOptions {
  readonly count: number;
  readonly shape: BacklogShape;
  readonly generator: Generator;
  readonly scenario: Scenario;
  /** Rounds of each pass (together) or loads of each relay (in turn). */
  readonly rounds: number;
  readonly warmUp: (relay: RelayProcess, sink: Sink) => Promise<void>;
}

export async function backlogScenario(tmp: string, sink: Sink, yaml: BacklogYaml, o: BacklogOptions): Promise<BacklogResult> {
  const downPort = await freePort();
  const extra = `  - id: down\n    match: { domains: [down.bench] }\n    upstream: { host: 127.0.0.1, port: ${downPort}, tls: none, connectTimeoutSeconds: 1 }\n`;
  const dirs = { empty: fs.mkdtempSync(path.join(tmp, 'backlog-empty-')), full: fs.mkdtempSync(path.join(tmp, 'backlog-full-')) };
  const secondSink = o.generator === 'bench' ? await startSink() : undefined;
  const running = new Set<RelayProcess>();
  const start = async (which: 'empty' | 'full', to: Sink) => {
    const t0 = performance.now();
    const relay = await startRelayProcess(dirs[which], yaml(dirs[which], to.port, extra), {}, 300_000);
    running.add(relay);
    return { relay, startSeconds: (performance.now() - t0) / 1000 };
  };
  const stop = async (relay: RelayProcess) => {
    running.delete(relay);
    await relay.stop();
  };
  try {
    const t0 = performance.now();
    if (o.count > 0) await fillSpool(path.join(dirs.full, 'spool'), o.count, o.shape);
    const fillSeconds = (performance.now() - t0) / 1000;
    const base = { count: o.count, shape: o.shape, generator: o.generator, fillSeconds };
    if (!secondSink) {
      const empty = await start('empty', sink);
      const full = await start('full', sink);
      for (const relay of [empty.relay, full.relay]) await o.warmUp(relay, sink);
      const rounds = await inTurn(empty.relay, full.relay, sink, o);
      return { ...base, loading: 'in-turn', startSeconds: full.startSeconds, emptyStartSeconds: empty.startSeconds, rounds, ...ratiosOf([rounds]) };
    }
    const passes: BacklogRound[][] = [];
    let startSeconds = 0;
    let emptyStartSeconds = 0;
    for (const backlogFirst of [false, true]) {
      // The first seat is started and loaded first, and sends to the bench's sink.
      const first = await start(backlogFirst ? 'full' : 'empty', sink);
      const second = await start(backlogFirst ? 'empty' : 'full', secondSink);
      const [full, empty] = backlogFirst ? [first, second] : [second, first];
      startSeconds = Math.max(startSeconds, full.startSeconds);
      emptyStartSeconds = Math.max(emptyStartSeconds, empty.startSeconds);
      try {
        await Promise.all([o.warmUp(first.relay, sink), o.warmUp(second.relay, secondSink)]);
        passes.push(await together(empty.relay, full.relay, backlogFirst, o));
      } finally {
        await stop(first.relay);
        await stop(second.relay);
      }
    }
    return { ...base, loading: 'together', startSeconds, emptyStartSeconds, rounds: passes.flat(), ...ratiosOf(passes) };
  } finally {
    for (const relay of running) await relay.stop();
    await secondSink?.stop();
    for (const dir of Object.values(dirs)) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Both relays under the same load at the same time, `rounds` times. */
async function together(empty: RelayProcess, full: RelayProcess, backlogFirst: boolean, o: BacklogOptions): Promise<BacklogRound[]> {
  const s = o.scenario;
  const load = (relay: RelayProcess) => runLoad({ port: relay.port, concurrency: s.concurrency, workload: s.workload, message: message(s.sizeKb), from: FROM, to: TO, seconds: s.seconds });
  const seats = backlogFirst ? [full, empty] : [empty, full];
  const rounds: BacklogRound[] = [];
  for (let i = 0; i < o.rounds; i++) {
    const before = seats.map((r) => r.cpuSeconds());
    const runs = await Promise.all(seats.map(load));
    const side = (relay: RelayProcess): BacklogSide => {
      const j = seats.indexOf(relay);
      const accepted = Math.max(1, runs[j]?.accepted ?? 0);
      return { acceptedPerSec: accepted / (runs[j]?.seconds ?? s.seconds), cpuMsPerMessage: ((relay.cpuSeconds() - (before[j] ?? 0)) * 1000) / accepted };
    };
    rounds.push({ empty: side(empty), withBacklog: side(full), backlogFirst });
  }
  return rounds;
}

/** One relay loaded, then the other, the order reversed each round. */
async function inTurn(empty: RelayProcess, full: RelayProcess, sink: Sink, o: BacklogOptions): Promise<BacklogRound[]> {
  const measure = async (relay: RelayProcess): Promise<BacklogSide> => {
    const target = { path: 'queue' as const, port: relay.port, relay };
    const row = o.generator === 'smtp-source' ? await measureSmtpSource(target, sink, o.scenario, smtpSourceCount(1200, o.scenario.seconds)) : await measureBench(target, sink, o.scenario);
    return { acceptedPerSec: row.acceptedPerSec, cpuMsPerMessage: row.cpuMsPerMessage ?? Number.NaN };
  };
  const rounds: BacklogRound[] = [];
  for (let round = 0; round < o.rounds; round++) {
    if (round % 2 === 0) {
      const e = await measure(empty);
      rounds.push({ empty: e, withBacklog: await measure(full) });
    } else {
      const withBacklog = await measure(full);
      rounds.push({ empty: await measure(empty), withBacklog });
    }
  }
  return rounds;
}

/**
 * With the backlog over empty. Together: each pass's median of its rounds' ratios, the passes combined by
 * their geometric mean (a lean to one seat cancels). In turn: each side's median, then the ratio.
 */
function ratiosOf(passes: readonly (readonly BacklogRound[])[]): { acceptRatio: number; cpuRatio: number } {
  const combine = (pick: (side: BacklogSide) => number) => {
    if (passes.length === 1) {
      const [rounds] = passes as [readonly BacklogRound[]];
      return median(rounds.map((r) => pick(r.withBacklog))) / median(rounds.map((r) => pick(r.empty)));
    }
    const medians = passes.map((rounds) => median(rounds.map((r) => pick(r.withBacklog) / pick(r.empty))));
    return Math.exp(medians.reduce((sum, m) => sum + Math.log(m), 0) / medians.length);
  };
  return { acceptRatio: combine((s) => s.acceptedPerSec), cpuRatio: combine((s) => s.cpuMsPerMessage) };
}
