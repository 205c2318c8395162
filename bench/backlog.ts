// A backlog must not slow the relay: an upstream down for an hour at peak leaves 100,000+ deferred
// messages. This fills a spool with that many deferred messages (a tenant whose upstream is down, next
// attempts spread over the coming hour, as retries are), starts a relay on it, and measures the accept
// rate and the relay's CPU per accepted message against a relay with an empty queue, same load.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { newMessageId } from '../relay/ids.js';
import { Spool } from '../relay/queue/spool.js';
import { freePort, type RelayProcess, type Sink, startRelayProcess } from './processes.js';
import { measureBench, message, type Row, type Scenario } from './throughput.js';

export interface BacklogResult {
  readonly deferred: number;
  /** Writing the deferred messages into the spool (the bench's own time, fsync off). */
  readonly fillSeconds: number;
  /** From starting the relay to its listening, with the backlog to read first. */
  readonly startSeconds: number;
  readonly emptyStartSeconds: number;
  readonly empty: Row;
  readonly withBacklog: Row;
}

/** Writes `count` deferred messages of tenant `down` into the spool at `dir`, as files of their own. */
async function fillSpool(dir: string, count: number): Promise<void> {
  const spool = new Spool(dir, { fsync: false });
  await spool.open();
  const bytes = message(1);
  const now = Date.now();
  const write = async (i: number) => {
    const id = newMessageId();
    // Deferred for the first time between 10 and 70 minutes from now: none falls due during the bench.
    const accepted = { v: 1 as const, id, createdAt: now - 3_600_000, mailFrom: 'app@down.bench', tenant: 'down', recipients: [{ address: `r${i}@example.com`, status: 'pending' as const }], attempts: 0, nextAttemptAt: now - 3_600_000 };
    const committed = await spool.commit(accepted, [bytes]);
    // Its first attempt failed: deferred, as the relay does it (the update moves it out of the journal).
    await spool.update({ ...committed, recipients: committed.recipients.map((r) => ({ ...r, reply: '451 4.4.1 Upstream down is unreachable' })), attempts: 1, nextAttemptAt: now + 600_000 + ((i * 7919) % 3_600_000), firstTempFailureAt: now - 3_600_000, lastError: '451 4.4.1 Upstream down is unreachable' });
  };
  const BATCH = 64;
  for (let i = 0; i < count; i += BATCH) await Promise.all(Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => write(i + j)));
  // Nothing is left to move out (each update did it), unless one failed.
  const deadline = performance.now() + 600_000;
  while (spool.movingOut > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await spool.close();
}

export async function backlogScenario(tmp: string, sink: Sink, yaml: (dir: string, extra: string) => (port: number) => string, count: number, scenario: Scenario, warmUp: (relay: RelayProcess) => Promise<void>): Promise<BacklogResult> {
  const downPort = await freePort();
  const extra = `  - id: down\n    match: { domains: [down.bench] }\n    upstream: { host: 127.0.0.1, port: ${downPort}, tls: none, connectTimeoutSeconds: 1 }\n`;
  const run = async (label: string, fill: number) => {
    const dir = fs.mkdtempSync(path.join(tmp, `backlog-${label}-`));
    try {
      const t0 = performance.now();
      if (fill > 0) await fillSpool(path.join(dir, 'spool'), fill);
      const fillSeconds = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      const relay = await startRelayProcess(dir, yaml(dir, extra), {}, 300_000);
      const startSeconds = (performance.now() - t1) / 1000;
      try {
        await warmUp(relay);
        const row = await measureBench({ path: 'queue', port: relay.port, relay }, sink, scenario);
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
  return { deferred: count, fillSeconds: full.fillSeconds, startSeconds: full.startSeconds, emptyStartSeconds: empty.startSeconds, empty: empty.row, withBacklog: full.row };
}
