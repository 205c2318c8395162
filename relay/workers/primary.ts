// `workers: N`: the primary process forks N workers (node:cluster) that share the SMTP listeners, each a
// whole relay with its own journal and spool (worker 0 in delivery.spool.path, worker n in worker-<n>/
// under it). The primary takes no mail: it restarts a worker that dies (the new one delivers what the old
// one accepted, from the same spool), delivers spools left by workers that are no longer configured,
// forwards SIGHUP and SIGTERM, and runs the one ops listener: /metrics summed over the workers
// (prom-client's cluster aggregation), /readyz when every worker is ready, and the admin endpoints.
//
// The SMTP connections do not pass through the primary: each worker binds the listen ports itself with
// SO_REUSEPORT and the kernel spreads new connections over them (by a hash of the client's address and
// port). node:cluster's default, the primary accepting each connection and handing it to a worker over
// IPC, cost about 0.4 ms of CPU more per message on apps' connection-per-message load (npm run bench,
// BENCH_ONLY=workers). The price: connections waiting in the backlog of a worker that dies are reset, and
// their clients retry (none had a 250). Port 0 (tests) falls back to the cluster's shared socket.
import cluster, { type Worker } from 'node:cluster';
import fs from 'node:fs';
import prometheus from 'prom-client';
import { loadConfigFile } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import { type DrainStatus, type OpsBackend, opsRoutes, renderedOnce } from '../runtime/ops-routes.js';
import { startOpsServer } from '../ops/http.js';
import { listenFailed } from '../startup-error.js';
import type { Logger } from '../ops/log.js';
import type { SendTestRecord } from '../ops/send-tests.js';
import { watchFile } from '../ops/reload.js';
import { SpoolLayout } from '../queue/spool-layout.js';
import type { TraceQuery } from '../reporting/trace-store.js';
import { ask, answerArrived, isFromWorker, type Question } from './ipc.js';

/** A worker that dies this soon after it started waits longer before the next start (a crash loop). */
const QUICK_DEATH_MS = 10_000;

export async function runPrimary(file: string, initial: Config, logger: Logger): Promise<number> {
  let config = initial;
  const count = initial.workers;
  const root = initial.delivery.spool.path;
  const workers = new Map<number, Worker>();
  const listening = new Map<number, readonly { host: string; port: number }[]>();
  const delays = new Map<number, number>();
  let stopping = false;
  let announced = false;

  const registry = new prometheus.Registry();
  const aggregator = new prometheus.AggregatorRegistry();
  const restarts = new prometheus.Counter({ name: 'tenant_relay_worker_restarts_total', help: 'Workers that died and were started again', registers: [registry] });
  new prometheus.Gauge({
    name: 'tenant_relay_workers',
    help: 'Worker processes running (workers: N), not counting those delivering a spool left by an earlier configuration',
    registers: [registry],
    collect() {
      this.set([...workers.keys()].filter((i) => i < count).length);
    },
  });

  const drainAnswer = (answers: readonly DrainStatus[]) => ({ draining: answers.length > 0 && answers.every((a) => a.draining), queued: sum(answers, 'queued'), inFlight: sum(answers, 'inFlight'), workers: answers.length });
  const everyWorker = async (question: Question) => (await ask([...workers.values()], question)) as DrainStatus[];
  const backend: OpsBackend = {
    metrics: renderedOnce(async () => ({ contentType: registry.contentType, text: `${await aggregator.clusterMetrics()}\n${await registry.metrics()}` })),
    readiness: async () => {
      const answers = (await ask([...workers.values()], { what: 'ready' })) as { ready: boolean }[];
      const ready = answers.filter((a) => a?.ready).length;
      return { ready: ready >= count && !stopping, checks: { config: 'loaded', workers: `${ready} of ${count} ready`, stopping } };
    },
    sendTest: async (token) => {
      const answers = await ask([...workers.values()], { what: 'send-test', token });
      return (answers.find((a) => a !== null) as SendTestRecord | undefined) ?? undefined;
    },
    preflight: async (body) => (await import('../delivery/preflight.js')).preflightEndpoint({ method: 'POST', body }, config, logger),
    drain: async (ms) => drainAnswer(await everyWorker({ what: 'drain', seconds: ms / 1000 })),
    undrain: async () => drainAnswer(await everyWorker({ what: 'undrain' })),
    drainStatus: async () => drainAnswer(await everyWorker({ what: 'drain-status' })),
    trace: config.trace.enabled ? async (query, limit, tenant) => (await allTraces(root))(query, limit, tenant) : undefined,
  };
  const tlsFiles = initial.ops.tls && { ...initial.ops.tls, name: 'ops' };
  const material = tlsFiles && { key: fs.readFileSync(tlsFiles.key), cert: fs.readFileSync(tlsFiles.cert) };
  const ops = initial.ops.enabled
    ? await startOpsServer({ host: initial.ops.host, port: initial.ops.port, ...(material ? { tls: material } : {}) }, opsRoutes(backend), () => config.ops).catch((err: unknown) => {
        throw listenFailed(err, 'ops.port', initial.ops.host, initial.ops.port);
      })
    : undefined;

  const fork = (index: number, orphan: boolean) => {
    const started = Date.now();
    const worker = cluster.fork({ TENANT_RELAY_WORKER: String(index), ...(orphan ? { TENANT_RELAY_DRAIN_ONLY: '1' } : {}) });
    workers.set(index, worker);
    logger.info({ event: 'worker-started', worker: index, pid: worker.process.pid, ...(orphan ? { leftovers: true } : {}) });
    worker.on('message', (message: unknown) => {
      if (!isFromWorker(message)) return;
      if (message.tr === 'answer') return answerArrived(message);
      listening.set(index, message.addresses);
      if (!announced && [...listening.keys()].filter((i) => i < count).length === count) {
        announced = true;
        logger.info({ event: 'listening', addresses: listening.get(0) ?? [], ops: ops?.port ?? null, config: config.source, tenants: config.tenants.length, workers: count });
      }
    });
    worker.on('exit', (code, signal) => {
      listening.delete(index);
      if (workers.get(index) === worker) workers.delete(index);
      if (stopping) return;
      if (orphan && code === 0) {
        logger.info({ event: 'orphan-spool-delivered', worker: index });
        return;
      }
      const delay = Date.now() - started < QUICK_DEATH_MS ? Math.min(30_000, (delays.get(index) ?? 500) * 2) : 1000;
      delays.set(index, delay);
      restarts.inc();
      logger.error({ event: 'worker-exited', worker: index, pid: worker.process.pid, code, signal, restartInMs: delay }, 'a worker died: a new one takes its spool and delivers what it accepted');
      setTimeout(() => {
        if (!stopping) fork(index, orphan);
      }, delay).unref();
    });
  };
  for (let i = 0; i < count; i++) fork(i, false);
  // Spools of workers beyond the count (the relay ran with more before): delivered, then those workers end.
  for (const spool of SpoolLayout.spoolsUnder(root)) if (spool.index >= count && SpoolLayout.holdsMail(spool.path)) fork(spool.index, true);

  const reload = (why: string) => {
    try {
      config = loadConfigFile(file);
    } catch (err) {
      logger.error({ event: 'config-reload-failed', why, err: (err as Error).message });
    }
    for (const w of workers.values()) w.process.kill('SIGHUP');
  };
  process.on('SIGHUP', () => reload('SIGHUP'));
  // Each worker watches the file itself; the primary follows for its own settings (ops tokens).
  const unwatch = watchFile(file, () => {
    try {
      config = loadConfigFile(file);
    } catch {
      // The workers log it.
    }
  });

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      if (stopping) {
        // A second signal: out now. Each worker's queue is on its disk.
        for (const w of workers.values()) w.process.kill('SIGTERM');
        return;
      }
      stopping = true;
      logger.info({ event: 'stopping', signal, workers: workers.size });
      for (const w of workers.values()) {
        if (w.isConnected()) w.send({ tr: 'stop' });
        else w.process.kill('SIGTERM');
      }
      const check = setInterval(() => {
        if (workers.size === 0 || [...workers.values()].every((w) => w.isDead())) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  unwatch();
  await ops?.close();
  logger.info({ event: 'stopped' });
  logger.flush();
  return 0;
}

function sum(answers: readonly DrainStatus[], key: 'queued' | 'inFlight'): number {
  return answers.reduce((n, a) => n + (a?.[key] ?? 0), 0);
}

/** A search over every worker's trace file under the spool root. */
async function allTraces(root: string) {
  const { findInTraces } = await import('../reporting/trace-store.js');
  const files = SpoolLayout.spoolsUnder(root)
    .map((s) => new SpoolLayout(s.path).traceFile)
    .filter((f) => fs.existsSync(f));
  return (query: TraceQuery, limit: number, tenant?: string) => findInTraces(files, query, limit, tenant);
}
