// `workers: N`: the primary process forks N workers (node:cluster) that share the SMTP listeners, each a
// whole relay with its own journal and spool (worker 0 in delivery.spool.path, worker n in worker-<n>/
// under it). The primary takes no mail: it restarts a worker that dies (the new one delivers what the old
// one accepted, from the same spool), delivers spools left by workers that are no longer configured,
// forwards SIGHUP and SIGTERM, and runs the one ops listener over workers-backend.ts (which asks the
// workers over IPC).
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
import type { Logger } from '../log.js';
import { startOpsServer } from '../ops/http.js';
import { SpoolLayout } from '../queue/spool-layout.js';
import { listenFailed } from '../startup-error.js';
import { answerArrived, isFromWorker } from './ipc.js';
import { opsRoutes } from './ops-routes.js';
import { watchFile } from './reload.js';
import { untilStopped } from './signals.js';
import { workersBackend, workersLinker } from './workers-backend.js';
import { listenForBounces } from './bounce-listening.js';

/** A worker that dies this soon after it started waits longer before the next start (a crash loop). */
const QUICK_DEATH_MS = 10_000;

export async function runPrimary(file: string, initial: Config, logger: Logger): Promise<number> {
  let config = initial;
  const count = initial.workers;
  const workers = new Map<number, Worker>();
  const listening = new Map<number, readonly { host: string; port: number }[]>();
  const delays = new Map<number, number>();
  let stopping = false;
  let announced = false;

  const registry = new prometheus.Registry();
  const restarts = new prometheus.Counter({ name: 'tenant_relay_worker_restarts_total', help: 'Workers that died and were started again', registers: [registry] });
  new prometheus.Gauge({
    name: 'tenant_relay_workers',
    help: 'Worker processes running (workers: N), not counting those delivering a spool left by an earlier configuration',
    registers: [registry],
    collect() {
      this.set([...workers.keys()].filter((i) => i < count).length);
    },
  });
  const backend = workersBackend({ workers: () => [...workers.values()], count, stopping: () => stopping, config: () => config, logger, registry });
  const tlsFiles = initial.ops.tls && { ...initial.ops.tls, name: 'ops' };
  const material = tlsFiles && { key: fs.readFileSync(tlsFiles.key), cert: fs.readFileSync(tlsFiles.cert) };
  const ops = initial.ops.enabled
    ? await startOpsServer({ host: initial.ops.host, port: initial.ops.port, ...(material ? { tls: material } : {}) }, opsRoutes(backend), () => config.ops).catch((err: unknown) => {
        throw listenFailed(err, 'ops.port', initial.ops.host, initial.ops.port);
      })
    : undefined;
  // Bounces by mail come to the primary, as the ops listener's webhooks do; the workers link them.
  const bounces = initial.bounces && (await listenForBounces(initial.bounces.listen, () => config.bounces, workersLinker({ workers: () => [...workers.values()], config: () => config, logger })));

  const fork = (index: number, orphan: boolean) => {
    const started = Date.now();
    const worker = cluster.fork({ TENANT_RELAY_WORKER: String(index), ...(orphan ? { TENANT_RELAY_DRAIN_ONLY: '1' } : {}) });
    workers.set(index, worker);
    logger.info({ event: 'worker-started', worker: index, pid: worker.process.pid, ...(orphan ? { leftovers: true } : {}) });
    worker.on('message', (message: unknown) => {
      if (!isFromWorker(message)) return;
      if (message.relayIpc === 'answer') return answerArrived(message);
      listening.set(index, message.addresses);
      if (!announced && [...listening.keys()].filter((i) => i < count).length === count) {
        announced = true;
        logger.info({ event: 'listening', addresses: listening.get(0) ?? [], ops: ops?.port ?? null, ...(bounces ? { bounces: bounces.port } : {}), config: config.source, tenants: config.tenants.length, workers: count });
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
  for (const spool of SpoolLayout.spoolsUnder(initial.delivery.spool.path)) if (spool.index >= count && SpoolLayout.holdsMail(spool.path)) fork(spool.index, true);

  process.on('SIGHUP', () => {
    try {
      config = loadConfigFile(file);
    } catch (err) {
      logger.error({ event: 'config-reload-failed', why: 'SIGHUP', err: (err as Error).message });
    }
    for (const w of workers.values()) w.process.kill('SIGHUP');
  });
  // Each worker watches the file itself; the primary follows for its own settings (ops tokens).
  const unwatch = watchFile(file, () => {
    try {
      config = loadConfigFile(file);
    } catch {
      // The workers log it.
    }
  });

  await untilStopped({
    signals: ['SIGTERM', 'SIGINT'],
    stop: async (signal) => {
      stopping = true;
      logger.info({ event: 'stopping', signal, workers: workers.size });
      for (const w of workers.values()) {
        if (w.isConnected()) w.send({ relayIpc: 'stop' });
        else w.process.kill('SIGTERM');
      }
      while (workers.size > 0 && ![...workers.values()].every((w) => w.isDead())) await new Promise((r) => setTimeout(r, 50));
    },
    // A second signal: out now. Each worker's queue is on its disk.
    hurry: () => {
      for (const w of workers.values()) w.process.kill('SIGTERM');
    },
  });
  unwatch();
  await bounces?.close();
  await ops?.close();
  logger.info({ event: 'stopped' });
  logger.flush();
  return 0;
}
