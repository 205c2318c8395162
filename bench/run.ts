// `npm run bench`: the relay's speed and memory on loopback, each figure next to baselines measured in the
// same run: the same load sent straight to the sink, and Postfix on the same sink when it is installed.
// The load comes the way apps send (a new connection per message, no pipelining) and the way pooled
// clients send (sessions reused), from our client and from Postfix's smtp-source. Bounded: every
// scenario runs for BENCH_SECONDS and waits at most 30 s to drain. Results: tables on stdout and JSON in
// bench/results/.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadConfigFile, parseConfig } from '../config/load.js';
import { silentLogger } from '../relay/log.js';
import { PlatformTenants } from '../relay/tenancy/platform-tenants.js';
import { type BacklogSide, backlogScenario } from './backlog.js';
import { metricsScrape, type ScrapeResult } from './metrics-scrape.js';
import { coldStart, median, writeTenantFiles } from './cold-start.js';
import { compareScenario, compareTable } from './compare.js';
import { consoleScenario, consoleTable } from './console.js';
import { suppressionLine, suppressionScenario } from './suppression.js';
import { rttLines, upstreamRttScenario } from './upstream-rtt.js';
import { runLoad, SmtpSession, type Workload } from './load.js';
import { phasesScenario, phasesTable } from './phases.js';
import { postfixInstalled, startPostfix } from './postfix.js';
import { type RelayProcess, type Sink, startFloorRelay, startRelayProcess, startSink } from './processes.js';
import { smtpSourceInstalled } from './smtp-source.js';
import { warmupCurve, warmupTable } from './warmup-curve.js';
import { flipLine, flipScenario } from './flip.js';
import { twinScenario, twinTable } from './twin.js';
import { floorScenario, floorTable } from './floor.js';
import { sinkOffersChunking } from './sink-session.js';
import { FROM, measureBench, measureSmtpSource, medianRow, message, type Row, type Target, smtpSourceCount, TO, throughputTable } from './throughput.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
// A relay runs for days; one that has just started runs unoptimized code (at concurrency 1 that alone
// doubled p99), and V8 compiles its per-message functions with its top tier only after some tens of
// thousands of messages (BENCH_ONLY=warmup shows the curve: at concurrency 1, 1.39 ms of CPU a message
// after 4,000 messages, 1.30 after 10,000, 1.15 after 40,000). So each relay process serves every
// scenario of its mode, and each path (the sink, both relays, Postfix) first gets BENCH_WARMUP seconds of
// mixed load, unmeasured: 20 s is about 18,000 messages through a relay here (5 s was 4,500).
// BENCH_WARMUP=0 measures from a cold start.
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP ?? 20);
const SETTLE_MS = 500;
const SINK_CHUNKING = sinkOffersChunking();
// BENCH_ROUNDS (1) measures each cell's paths that many times, in turn, the order reversed every other
// round, and keeps each measure's median: the ratios then survive a slow minute of this shared machine.
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1));

/** Each target measured ROUNDS times, alternating the order; one row per target, in `targets`' order. */
async function inRounds(targets: readonly Target[], measure: (target: Target) => Promise<Row>): Promise<Row[]> {
  const byTarget = new Map<Target, Row[]>(targets.map((t) => [t, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const measured: Row[] = [];
    for (const target of round % 2 === 0 ? targets : [...targets].reverse()) {
      const row = await measure(target);
      measured.push(row);
      byTarget.get(target)?.push(row);
    }
    if (ROUNDS > 1) process.stderr.write(`    round ${round + 1}: ${measured.map((r) => `${r.path} ${fmt(r.deliveredPerSec)}/s ${fmt(r.cpuMsPerMessage, 2)} ms`).join(', ')}\n`);
  }
  return targets.map((t) => medianRow(byTarget.get(t) ?? []));
}
// BENCH_ONLY=queue,1,10 runs that mode, size and concurrency (and its baselines), for profiling with
// BENCH_PROFILE=1; BENCH_ONLY=memory the idle connections and the 50 MB scenarios; BENCH_ONLY=backlog the backlog one;
// BENCH_ONLY=cold the cold start; BENCH_ONLY=workers workers: 1 against workers: 2; BENCH_ONLY=console the
// mail console over a trace of BENCH_TRACE_MESSAGES (1 M); BENCH_ONLY=suppression the suppression check;
// BENCH_ONLY=phases where one message's time goes at concurrency 1 (bench/phases.ts); BENCH_ONLY=compare
// this build against BENCH_COMPARE_ROOT's in alternated runs (bench/compare.ts); BENCH_ONLY=warmup a fresh
// relay's CPU per message as it warms up (bench/warmup-curve.ts); BENCH_ONLY=floor the relay's CPU per
// message by layer, from the floor relay up (bench/floor.ts); BENCH_ONLY=flip one relay against itself,
// switching V8 flags or a code path every second (bench/flip.ts); BENCH_ONLY=twin this build and
// BENCH_TWIN_LAUNCHER's side by side under the same load at the same time (bench/twin.ts); BENCH_ONLY=rtt a message's time to an upstream
// a round trip away, with DATA and with BDAT (bench/upstream-rtt.ts).
const ONLY = process.env.BENCH_ONLY && !['memory', 'backlog', 'cold', 'workers', 'metrics', 'console', 'suppression', 'phases', 'compare', 'warmup', 'floor', 'rtt', 'flip', 'twin'].includes(process.env.BENCH_ONLY) ? process.env.BENCH_ONLY.split(',') : undefined;
const SIZES_KB = ONLY ? [Number(ONLY[1])] : [1, 20, 200];
const CONCURRENCY = ONLY ? [Number(ONLY[2])] : [1, 10, 50];
const MODES = (ONLY ? [ONLY[0]] : ['passthrough', 'queue']) as ('passthrough' | 'queue')[];
const WORKLOADS = (process.env.BENCH_WORKLOADS?.split(',') ?? ['per-message', 'reuse']) as Workload[];
// smtp-source drives the sizes the goals name (1 and 20 KB); our client all of them.
const SMTP_SOURCE_SIZES_KB = [1, 20];
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 100_000);
/** Loads of each relay, alternating (BENCH_BACKLOG_ROUNDS, 3): their medians are compared. */
const BACKLOG_ROUNDS = Math.max(1, Number(process.env.BENCH_BACKLOG_ROUNDS ?? 3));
const BACKLOG_SHAPE = process.env.BENCH_BACKLOG_SHAPE === 'waiting' ? 'waiting' : 'deferred';
const BACKLOG_GENERATOR = process.env.BENCH_BACKLOG_GENERATOR === 'smtp-source' && smtpSourceInstalled() ? 'smtp-source' : 'bench';

const relayYaml = (dir: string, sinkPort: number, mode: 'queue' | 'passthrough', tenants = '') => (port: number) => `
hostname: bench.relay.localhost
listen: [{ host: 127.0.0.1, port: ${port} }]
ops: { enabled: false }
maxMessageSizeBytes: 67108864
# Every client of the bench is 127.0.0.1: one address holds the 1,000 idle connections of that scenario.
inbound: { maxConnections: 5000, maxConnectionsPerTrustedIp: 5000 }
delivery:
  mode: ${mode}
  spool: { path: ${dir}/spool, fsync: ${process.env.BENCH_NO_FSYNC ? 'false' : 'true'}, minFreeMegabytes: 10 }
  maxConcurrentDeliveries: 100
smarthost: { host: 127.0.0.1, port: ${sinkPort}, tls: none, maxConnections: 50 }
${process.env.BENCH_NO_TRACE ? 'trace: { enabled: false }' : ''}
tenants:
  - id: acme
    match: { domains: [acme.bench] }
    upstream: { host: 127.0.0.1, port: ${sinkPort}, tls: none, maxConnections: 50 }
    identity: { from: notifications@acme.bench, displayName: Acme Notifications, replyTo: support@acme.bench }
${tenants}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));

/** Unmeasured load, both workloads, most of it small messages, until everything sent has reached the sink. */
async function warmUp(port: number, sink: Sink, seconds = WARMUP_SECONDS): Promise<void> {
  if (seconds <= 0) return;
  const start = await sink.count();
  let sent = 0;
  for (const [kb, share, workload] of [[1, 0.4, 'per-message'], [1, 0.2, 'reuse'], [20, 0.2, 'per-message'], [200, 0.2, 'reuse']] as const) {
    sent += (await runLoad({ port, concurrency: 10, workload, message: message(kb), from: FROM, to: TO, seconds: seconds * share })).accepted;
  }
  const drainStart = performance.now();
  while ((await sink.count()) - start < sent && performance.now() - drainStart < 30_000) await sleep(20);
}

async function throughput(tmp: string, sink: Sink): Promise<Row[]> {
  const rows: Row[] = [];
  const postfix = postfixInstalled() ? await startPostfix(sink.port).catch((err: Error) => (console.log(`postfix: not compared (${err.message.split('\n')[0]})`), undefined)) : undefined;
  if (!postfixInstalled()) console.log('postfix: not installed (apt-get install postfix), or the bench is not root: not compared');
  if (postfix) console.log(`postfix ${postfix.version}: a private instance relaying by sender domain to the same sink, queue fsynced`);
  const withSmtpSource = smtpSourceInstalled() && process.env.BENCH_SMTP_SOURCE !== '0';
  const relays = new Map<'passthrough' | 'queue', RelayProcess>();
  const dirs: string[] = [];
  let floor: Awaited<ReturnType<typeof startFloorRelay>> | undefined;
  try {
    for (const mode of MODES) {
      const dir = fs.mkdtempSync(path.join(tmp, `${mode}-`));
      dirs.push(dir);
      relays.set(mode, await startRelayProcess(dir, relayYaml(dir, sink.port, mode)));
    }
    // Beside queue mode, the least a relay with its guarantees costs in Node here (floor-relay.ts).
    if (MODES.includes('queue')) {
      const dir = fs.mkdtempSync(path.join(tmp, 'floor-'));
      dirs.push(dir);
      floor = await startFloorRelay(sink.port, dir);
    }
    const targets: Target[] = [
      { path: 'direct', port: sink.port, cpuSeconds: () => sink.cpuSeconds() },
      ...(floor ? [{ path: 'floor' as const, port: floor.port, cpuSeconds: floor.cpuSeconds }] : []),
      ...[...relays].map(([mode, relay]) => ({ path: mode, port: relay.port, relay })),
      ...(postfix ? [{ path: 'postfix' as const, port: postfix.port, cpuSeconds: () => postfix.cpuSeconds() }] : []),
    ];
    for (const target of targets) await warmUp(target.port, sink);
    for (const workload of WORKLOADS) {
      for (const sizeKb of SIZES_KB) {
        for (const concurrency of CONCURRENCY) {
          const scenario = { workload, sizeKb, concurrency, seconds: SECONDS, settleMs: SETTLE_MS };
          const ours = await inRounds(targets, (target) => measureBench(target, sink, scenario));
          rows.push(...ours);
          const line = (rs: Row[]) => rs.map((r) => `${r.path} ${fmt(r.deliveredPerSec)}/s${r.cpuMsPerMessage !== undefined ? ` (${fmt(r.cpuMsPerMessage, 2)} ms CPU/msg)` : ''}`).join(', ');
          process.stderr.write(`  ${workload} ${sizeKb} KB x ${concurrency}: ${line(ours)}\n`);
          if (!withSmtpSource || !SMTP_SOURCE_SIZES_KB.includes(sizeKb)) continue;
          const counts = new Map(targets.map((target, i) => [target, smtpSourceCount(ours[i]?.acceptedPerSec ?? 100, SECONDS)]));
          const theirs = await inRounds(targets, (target) => measureSmtpSource(target, sink, scenario, counts.get(target) ?? 100));
          rows.push(...theirs);
          process.stderr.write(`  ${workload} ${sizeKb} KB x ${concurrency} (smtp-source): ${line(theirs)}\n`);
        }
      }
    }
  } finally {
    for (const relay of relays.values()) await relay.stop();
    await floor?.stop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    postfix?.stop();
  }
  return rows;
}

/**
 * The same queue-mode relay with `workers: 1` and `workers: 2`, under the loads a second core should help
 * with (many apps at once, each a connection per message; a pool reusing sessions), from our client and
 * from smtp-source. CPU and RSS are the primary's and its workers' together. On this two-core machine the
 * load generator and the sink share the cores with the relay, so the gain is a floor, not a ceiling.
 */
async function workersScaling(tmp: string, sink: Sink): Promise<Row[]> {
  const rows: Row[] = [];
  const loads = [
    { workload: 'per-message', concurrency: 10 },
    { workload: 'per-message', concurrency: 50 },
    { workload: 'reuse', concurrency: 50 },
  ] as const;
  for (const workers of [1, 2]) {
    const dir = fs.mkdtempSync(path.join(tmp, `workers-${workers}-`));
    const relay = await startRelayProcess(dir, relayYaml(dir, sink.port, 'queue', `workers: ${workers}\n`));
    const target: Target = { path: 'queue', port: relay.port, relay };
    try {
      await warmUp(relay.port, sink);
      for (const { workload, concurrency } of loads) {
        const scenario = { workload, sizeKb: 1, concurrency, seconds: SECONDS, settleMs: SETTLE_MS };
        const ours = await measureBench(target, sink, scenario);
        const count = smtpSourceCount(ours.acceptedPerSec, SECONDS);
        const theirs = smtpSourceInstalled() ? [await measureSmtpSource(target, sink, scenario, count)] : [];
        for (const row of [ours, ...theirs]) rows.push({ ...row, workers });
        process.stderr.write(`  workers ${workers}, ${workload} 1 KB x ${concurrency}: ${[ours, ...theirs].map((r) => `${r.generator} ${fmt(r.deliveredPerSec)}/s`).join(', ')}\n`);
      }
    } finally {
      await relay.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

function workersTable(rows: readonly Row[]): string {
  const lines = ['workers: 1 against workers: 2 (queue mode, 1 KB; delivered msgs/s, relay CPU ms per message, relay RSS)', 'load                      generator     workers 1              workers 2              2 / 1'];
  for (const one of rows.filter((r) => r.workers === 1)) {
    const two = rows.find((r) => r.workers === 2 && r.workload === one.workload && r.concurrency === one.concurrency && r.generator === one.generator);
    const cell = (r: Row | undefined) => `${fmt(r?.deliveredPerSec).padStart(5)}/s ${fmt(r?.cpuMsPerMessage, 2)} ms ${fmt(r?.relayPeakRssMb)} MB`.padEnd(23);
    lines.push(`${`${one.workload} x ${one.concurrency}`.padEnd(26)}${one.generator.padEnd(14)}${cell(one)}${cell(two)}${fmt(two ? two.deliveredPerSec / one.deliveredPerSec : undefined, 2)}x`);
  }
  return lines.join('\n');
}

/** RSS of a queue-mode relay holding 1,000 idle client connections (each has had its greeting and EHLO). */
async function idleConnections(tmp: string, sink: Sink): Promise<{ connections: number; rssBeforeMb: number; rssMb: number }> {
  const dir = fs.mkdtempSync(path.join(tmp, 'idle-'));
  const relay = await startRelayProcess(dir, relayYaml(dir, sink.port, 'queue'));
  const sessions: SmtpSession[] = [];
  try {
    await sleep(300);
    const rssBeforeMb = relay.memory().rssMb;
    for (let i = 0; i < 1000; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => SmtpSession.open(relay.port)));
      await Promise.all(batch.map((s) => s.command('EHLO idle.client\r\n', 250)));
      sessions.push(...batch);
    }
    await sleep(500);
    return { connections: sessions.length, rssBeforeMb, rssMb: relay.memory().rssMb };
  } finally {
    for (const s of sessions) s.close();
    await relay.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Peak RSS growth of the relay while it relays one 50 MB message (no DKIM), in each mode. */
async function bigMessage(tmp: string, sink: Sink, mode: 'queue' | 'passthrough'): Promise<{ mode: string; sizeMb: number; rssBeforeMb: number; peakMb: number; growthMb: number; seconds: number }> {
  const dir = fs.mkdtempSync(path.join(tmp, `big-${mode}-`));
  const relay = await startRelayProcess(dir, relayYaml(dir, sink.port, mode));
  try {
    // One small message first, so pools and code paths are warm and the baseline is a running relay's.
    await runLoad({ port: relay.port, concurrency: 1, workload: 'reuse', message: message(1), from: FROM, to: TO, seconds: 0.3, maxMessages: 20 });
    await sleep(300);
    const rssBeforeMb = relay.memory().rssMb;
    const peakBefore = relay.memory().peakMb;
    const before = await sink.count();
    const started = performance.now();
    const result = await runLoad({ port: relay.port, concurrency: 1, workload: 'reuse', message: message(50 * 1024), from: FROM, to: TO, seconds: 60, maxMessages: 1 });
    while ((await sink.count()) === before && performance.now() - started < 60_000) await sleep(20);
    const seconds = (performance.now() - started) / 1000;
    if (result.accepted !== 1) throw new Error(`the 50 MB message was not accepted in ${mode} mode`);
    const peakMb = relay.memory().peakMb;
    return { mode, sizeMb: 50, rssBeforeMb, peakMb, growthMb: peakMb - Math.max(rssBeforeMb, Math.min(peakBefore, rssBeforeMb)), seconds };
  } finally {
    await relay.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Load and validate 10,000 tenants from 10,000 files, and the cost of one routing lookup among them. */
function tenantDirectory(tmp: string): { tenants: number; loadMs: number; lookupNs: number } {
  const dir = fs.mkdtempSync(path.join(tmp, 'tenants-'));
  writeTenantFiles(dir, 10_000);
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, `smarthost: { host: 127.0.0.1, tls: none }\ntenantFiles: [${path.join(dir, 'tenants.d')}]\n`);
  const started = performance.now();
  const config = loadConfigFile(file, {});
  const loadMs = performance.now() - started;
  const n = 200_000;
  const t0 = performance.now();
  let found = 0;
  for (let i = 0; i < n; i++) {
    const k = (i * 7919) % 10_000;
    if (config.directory.byAddress(`someone@mail${k}.example`) || config.directory.byDomain(`eu.mail.t${k}.example`)) found++;
  }
  const lookupNs = ((performance.now() - t0) * 1e6) / n;
  if (found !== n || config.tenants.length !== 10_000) throw new Error('tenant directory bench found the wrong tenants');
  fs.rmSync(dir, { recursive: true, force: true });
  return { tenants: config.tenants.length, loadMs, lookupNs };
}

/** The HTTP tenant source: one miss (a real request to a node:http platform on loopback), then cache hits. */
async function platformLookups(): Promise<{ missMs: number; hitNs: number }> {
  const record = JSON.stringify({ id: 'globex', match: { domains: ['globex.example'] }, upstream: { host: 'smtp.globex.example', tls: 'starttls', username: 'u', password: 'p' } });
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(record));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address() as AddressInfo;
    const config = parseConfig(`smarthost: { host: 127.0.0.1, tls: none }\ntenantSource: { url: "http://127.0.0.1:${port}" }\n`, 'bench.yaml', {});
    if (!config.tenantSource) throw new Error('no tenant source');
    const platform = new PlatformTenants(config.tenantSource, { logger: silentLogger, config: () => config });
    const query = { by: 'sender', value: 'alerts@globex.example' } as const;
    const t0 = performance.now();
    if ((await platform.lookup(query)).kind !== 'found') throw new Error('platform lookup failed');
    const missMs = performance.now() - t0;
    const n = 100_000;
    const t1 = performance.now();
    for (let i = 0; i < n; i++) await platform.lookup(query);
    return { missMs, hitNs: ((performance.now() - t1) * 1e6) / n };
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

async function backlog(tmp: string, sink: Sink) {
  const scenario = { workload: 'per-message' as const, sizeKb: 1, concurrency: 10, seconds: SECONDS * 2, settleMs: SETTLE_MS };
  const b = await backlogScenario(tmp, sink, (dir, sinkPort, extra) => relayYaml(dir, sinkPort, 'queue', extra), {
    count: BACKLOG,
    shape: BACKLOG_SHAPE,
    generator: BACKLOG_GENERATOR,
    scenario,
    rounds: BACKLOG_ROUNDS,
    warmUp: (relay, to) => warmUp(relay.port, to, 3),
  });
  const side = (s: BacklogSide) => `${fmt(s.acceptedPerSec)} / ${fmt(s.cpuMsPerMessage, 2)} ms`;
  console.log(`\nbacklog: ${b.count} ${b.shape === 'waiting' ? 'messages waiting for their first attempt' : 'deferred messages'} queued (written in ${fmt(b.fillSeconds, 1)} s); relay listening ${fmt(b.startSeconds, 1)} s after start (${fmt(b.emptyStartSeconds, 1)} s empty); load from ${b.generator === 'bench' ? 'our client' : 'smtp-source'}, ${b.loading === 'together' ? 'both relays loaded at the same time' : 'the relays loaded in turn'}`);
  console.log('  rounds, accepted msgs/s / relay CPU a message, empty queue against the backlog:');
  for (const r of b.rounds) console.log(`    ${r.backlogFirst === undefined ? '' : r.backlogFirst ? '(backlog in the first seat) ' : '(empty queue in the first seat) '}${side(r.empty)} against ${side(r.withBacklog)}: ${fmt(100 * (r.withBacklog.acceptedPerSec / r.empty.acceptedPerSec))} % of the rate, CPU x${fmt(r.withBacklog.cpuMsPerMessage / r.empty.cpuMsPerMessage, 2)}`);
  console.log(`  with the backlog: ${fmt(100 * b.acceptRatio)} % of the empty queue's accept rate, CPU a message x${fmt(b.cpuRatio, 2)} (${b.loading === 'together' ? "the geometric mean of the two seatings' medians" : "each side's median"}; goal: within 10 %)`);
  return b;
}

function printScrape(r: ScrapeResult): void {
  console.log(
    `/metrics with ${r.tenants} tenants that have sent: ${fmt(r.bytes / 1024)} KB, ${r.series} series; a scrape takes ${fmt(median(r.scrapeMs), 1)} ms (median of ${r.scrapeMs.length}), twenty at once ${fmt(r.concurrentScrapeMs)} ms; an SMTP message ${fmt(r.smtpMsQuiet, 2)} ms quiet, ${fmt(r.smtpMsDuringScrapes, 2)} ms during them (goals: < 200 KB, < 50 ms, SMTP within 2x)`,
  );
}

function printColdStart(c: Awaited<ReturnType<typeof coldStart>>): void {
  const list = (xs: number[]) => xs.map((x) => fmt(x)).join(', ');
  console.log(`cold start, ${c.tenants} tenant files, fresh processes: check ${fmt(median(c.checkMs))} ms (median of ${list(c.checkMs)}); serve to listening ${fmt(median(c.serveMs))} ms (${list(c.serveMs)})`);
}

async function main() {
  if (!fs.existsSync('dist/relay/cli.js')) throw new Error('run `npm run bench` (it builds first)');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-bench-'));
  const sink = await startSink();
  const started = performance.now();
  try {
    console.log(`tenant-relay bench: ${SECONDS} s per scenario, node ${process.version}, ${os.cpus().length} CPUs, loopback only`);
    console.log(`sink: ${SINK_CHUNKING ? 'offers CHUNKING, as Postfix, Microsoft 365 and Gmail do (the relay sends BDAT, Postfix DATA; BENCH_SINK_CHUNKING=0: DATA only)' : 'DATA only (BENCH_SINK_CHUNKING=0): the relay sends DATA, as Postfix does'}`);
    if (process.env.BENCH_ONLY === 'memory') {
      const idle = await idleConnections(tmp, sink);
      console.log(`idle connections: ${idle.connections} open, relay RSS ${fmt(idle.rssMb)} MB (${fmt(idle.rssBeforeMb)} MB before them)`);
      for (const mode of ['queue', 'passthrough'] as const) {
        const b = await bigMessage(tmp, sink, mode);
        console.log(`50 MB message, ${b.mode}: relay RSS ${fmt(b.rssBeforeMb)} MB before, peak ${fmt(b.peakMb)} MB (+${fmt(b.growthMb)} MB)`);
      }
      return;
    }
    if (process.env.BENCH_ONLY === 'backlog') {
      await backlog(tmp, sink);
      return;
    }
    if (process.env.BENCH_ONLY === 'cold') {
      printColdStart(await coldStart(tmp));
      return;
    }
    if (process.env.BENCH_ONLY === 'workers') {
      console.log(`\n${workersTable(await workersScaling(tmp, sink))}`);
      return;
    }
    if (process.env.BENCH_ONLY === 'metrics') {
      printScrape(await metricsScrape(tmp, sink));
      return;
    }
    if (process.env.BENCH_ONLY === 'suppression') {
      console.log(suppressionLine(await suppressionScenario(tmp)));
      return;
    }
    if (process.env.BENCH_ONLY === 'rtt') {
      console.log(rttLines(await upstreamRttScenario()).join('\n'));
      return;
    }
    if (process.env.BENCH_ONLY === 'phases') {
      const relay = await startRelayProcess(tmp, relayYaml(tmp, sink.port, 'queue'));
      const postfix = postfixInstalled() ? await startPostfix(sink.port).catch(() => undefined) : undefined;
      try {
        const targets = [{ name: 'direct', port: sink.port }, { name: 'queue', port: relay.port }, ...(postfix ? [{ name: `postfix ${postfix.version}`, port: postfix.port }] : [])];
        for (const target of targets) await warmUp(target.port, sink);
        console.log(phasesTable(await phasesScenario(sink, targets)));
      } finally {
        await relay.stop();
        postfix?.stop();
      }
      return;
    }
    if (process.env.BENCH_ONLY === 'warmup') {
      const relay = await startRelayProcess(tmp, relayYaml(tmp, sink.port, 'queue'));
      try {
        const windowSeconds = 4;
        console.log(warmupTable(await warmupCurve(relay, sink, Number(process.env.BENCH_WARMUP_WINDOWS ?? 20), windowSeconds), windowSeconds));
      } finally {
        await relay.stop();
      }
      return;
    }
    if (process.env.BENCH_ONLY === 'floor') {
      const options = {
        rounds: Number(process.env.BENCH_FLOOR_ROUNDS ?? 3),
        sizeKb: Number(process.env.BENCH_FLOOR_KB ?? 1),
        concurrency: Number(process.env.BENCH_FLOOR_CONC ?? 1),
        seconds: SECONDS,
        tmp,
        startRelay: (dir: string) => startRelayProcess(dir, relayYaml(dir, sink.port, 'queue')),
        warmUp: (port: number) => warmUp(port, sink),
      };
      console.log(floorTable(await floorScenario(sink, options), options));
      return;
    }
    if (process.env.BENCH_ONLY === 'flip') {
      const options = {
        sizeKb: Number(process.env.BENCH_FLIP_KB ?? 1),
        concurrency: Number(process.env.BENCH_FLIP_CONC ?? 1),
        seconds: Number(process.env.BENCH_SECONDS ?? 60),
        ...(process.env.BENCH_FLIP_GEN === 'smtp-source' ? { smtpSourceCount: Number(process.env.BENCH_FLIP_COUNT ?? 40_000) } : {}),
        dir: tmp,
        start: (env: NodeJS.ProcessEnv) => startRelayProcess(tmp, relayYaml(tmp, sink.port, 'queue'), env),
        warmUp: (port: number) => warmUp(port, sink),
      };
      console.log(flipLine(await flipScenario(sink, options), options));
      return;
    }
    if (process.env.BENCH_ONLY === 'twin') {
      const options = {
        otherLauncher: process.env.BENCH_TWIN_LAUNCHER ? path.resolve(process.env.BENCH_TWIN_LAUNCHER) : undefined,
        sizeKb: Number(process.env.BENCH_TWIN_KB ?? 1),
        concurrency: Number(process.env.BENCH_TWIN_CONC ?? 1),
        rounds: Number(process.env.BENCH_TWIN_ROUNDS ?? 4),
        seconds: Number(process.env.BENCH_TWIN_SECONDS ?? 15),
        tmp,
        start: (dir: string, sinkPort: number, launcher: string | undefined) => startRelayProcess(dir, relayYaml(dir, sinkPort, 'queue'), {}, 20_000, launcher),
      };
      const passes = [await twinScenario(sink, { ...options, otherFirst: false })];
      if (process.env.BENCH_TWIN_SEATS !== 'fixed') passes.push(await twinScenario(sink, { ...options, otherFirst: true }));
      console.log(twinTable(passes, options));
      return;
    }
    if (process.env.BENCH_ONLY === 'compare') {
      const otherRoot = process.env.BENCH_COMPARE_ROOT;
      if (!otherRoot) throw new Error('BENCH_ONLY=compare needs BENCH_COMPARE_ROOT: a checkout of the other build, built');
      const options = {
        otherRoot,
        rounds: Number(process.env.BENCH_COMPARE_ROUNDS ?? 4),
        sizeKb: Number(process.env.BENCH_COMPARE_KB ?? 1),
        concurrency: (process.env.BENCH_COMPARE_CONC ?? '1,10').split(',').map(Number),
        seconds: SECONDS,
        start: (launcher: string) => {
          const dir = fs.mkdtempSync(path.join(tmp, 'compare-'));
          return startRelayProcess(dir, relayYaml(dir, sink.port, 'queue'), {}, 20_000, launcher);
        },
        warmUp: (port: number) => warmUp(port, sink),
      };
      console.log(compareTable(await compareScenario(sink, options), options));
      return;
    }
    if (process.env.BENCH_ONLY === 'console') {
      console.log(consoleTable(await consoleScenario(tmp)));
      return;
    }
    const cold = await coldStart(tmp);
    printColdStart(cold);
    const directory = tenantDirectory(tmp);
    console.log(`tenant directory: ${directory.tenants} tenants in ${directory.tenants} files loaded and validated in ${fmt(directory.loadMs)} ms; one lookup (address or parent domain) costs ${fmt(directory.lookupNs)} ns`);
    const platform = await platformLookups();
    console.log(`tenant source (HTTP): first lookup ${fmt(platform.missMs, 1)} ms (a request), then ${fmt(platform.hitNs)} ns per cached lookup`);
    const rows = await throughput(tmp, sink);
    console.log(`\n${throughputTable(rows)}`);
    if (ONLY) return;
    const backlogResult = await backlog(tmp, sink);
    const workerRows = await workersScaling(tmp, sink);
    console.log(`\n${workersTable(workerRows)}`);
    const idle = await idleConnections(tmp, sink);
    console.log(`\nidle connections: ${idle.connections} open, relay RSS ${fmt(idle.rssMb)} MB (${fmt(idle.rssBeforeMb)} MB before them)`);
    const big = [await bigMessage(tmp, sink, 'queue'), await bigMessage(tmp, sink, 'passthrough')];
    for (const b of big) console.log(`50 MB message, ${b.mode}: relay RSS ${fmt(b.rssBeforeMb)} MB before, peak ${fmt(b.peakMb)} MB (+${fmt(b.growthMb)} MB), ${fmt(b.seconds, 1)} s to the sink`);
    const scrape = await metricsScrape(tmp, sink);
    printScrape(scrape);
    const consoleResult = await consoleScenario(tmp);
    console.log(`\n${consoleTable(consoleResult)}`);
    const suppression = await suppressionScenario(tmp);
    console.log(suppressionLine(suppression));
    const rtt = await upstreamRttScenario();
    console.log(`\n${rttLines(rtt).join('\n')}`);
    const results = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, secondsPerScenario: SECONDS, sinkChunking: SINK_CHUNKING, coldStart: cold, tenantDirectory: directory, tenantSource: platform, throughput: rows, backlog: backlogResult, workers: workerRows, idleConnections: idle, bigMessage: big, metricsScrape: scrape, console: consoleResult, suppression, upstreamRtt: rtt };
    fs.mkdirSync('bench/results', { recursive: true });
    const out = path.join('bench/results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\n${fmt((performance.now() - started) / 1000)} s in all; JSON in ${out}`);
  } finally {
    await sink.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
