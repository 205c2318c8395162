// A backlog must not slow the relay: an upstream down for an hour at peak leaves 100,000+ deferred
// messages. This fills a spool with that many deferred messages (a tenant whose upstream is down, next
// attempts spread over the coming hour, as retries are), starts a relay on it, and measures the accept
// rate and the relay's CPU per accepted message against a relay with an empty queue, same load.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { newMessageId } from '../relay/ids.js';
import { Spool } from '../relay/queue/spool.js';
import { freePort, type RelayProcess, type Sink, startRelayProcess } from './processes.js';
import { type Generator, measureBench, measureSmtpSource, message, type Row, type Scenario, smtpSourceCount } from './throughput.js';

export interface BacklogResult {
  /** Messages in the backlog. */
  readonly count: number;
  readonly shape: BacklogShape;
  /** Writing them into the spool (the bench's own time, fsync off, then a sync). */
  readonly fillSeconds: number;
  /** From starting the relay to its listening, with the backlog to read first. */
  readonly startSeconds: number;
  readonly emptyStartSeconds: number;
  readonly empty: Row;
  readonly withBacklog: Row;
}

/**
 * How the backlog waits: `deferred` (the default), each message tried once and deferred, so in files of its
 * own; `waiting` (BENCH_BACKLOG_SHAPE=waiting), never tried yet (a paced tenant's line), so in the journal
 * until it sits there too long: the last two segments' messages are still there at the relay's start, and
 * go stale, to be moved out, as the load fills new ones.
 */
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

/**
 * The load is our client's, or smtp-source's (BENCH_BACKLOG_GENERATOR=smtp-source): the same number of
 * messages for both relays, about what this machine takes in the scenario's time.
 */
export async function backlogScenario(tmp: string, sink: Sink, yaml: (dir: string, extra: string) => (port: number) => string, count: number, shape: BacklogShape, generator: Generator, scenario: Scenario, warmUp: (relay: RelayProcess) => Promise<void>): Promise<BacklogResult> {
  const downPort = await freePort();
  const extra = `  - id: down\n    match: { domains: [down.bench] }\n    upstream: { host: 127.0.0.1, port: ${downPort}, tls: none, connectTimeoutSeconds: 1 }\n`;
  const run = async (label: string, fill: number) => {
    const dir = fs.mkdtempSync(path.join(tmp, `backlog-${label}-`));
    try {
      const t0 = performance.now();
      if (fill > 0) await fillSpool(path.join(dir, 'spool'), fill, shape);
      const fillSeconds = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      const relay = await startRelayProcess(dir, yaml(dir, extra), {}, 300_000);
      const startSeconds = (performance.now() - t1) / 1000;
      try {
        await warmUp(relay);
        const target = { path: 'queue' as const, port: relay.port, relay };
        const row = generator === 'smtp-source' ? await measureSmtpSource(target, sink, scenario, smtpSourceCount(1200, scenario.seconds)) : await measureBench(target, sink, scenario);
        return { fillSeconds, startSeconds, row };
      } finally {
        await relay.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const empty = await run('empty', 0);
  const full = await run('full', count);
  return { count, shape, fillSeconds: full.fillSeconds, startSeconds: full.startSeconds, emptyStartSeconds: empty.startSeconds, empty: empty.row, withBacklog: full.row };
}
