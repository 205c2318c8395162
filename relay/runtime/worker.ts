// A worker's process (workers: N): a whole relay on its own spool, sharing the listen ports with the
// others; it answers the primary's questions from its running relay, offers its metrics for the
// primary's one /metrics (prom-client's cluster aggregation), says when it listens, and stops when the
// primary asks. A worker started for a spool no configured worker owns only delivers it, then ends.
import cluster from 'node:cluster';
import prometheus from 'prom-client';
import { loadConfigFile } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import type { Logger } from '../log.js';
import { SpoolLayout } from '../queue/spool-layout.js';
import { waitUntilEmpty } from './drain.js';
import { type FromWorker, isStop, isToWorker, type Question } from './ipc.js';
import { exitNow, untilStopped } from './signals.js';
import { type RunningRelay, startRelay } from './start-relay.js';

/** This worker's index, as the primary numbered it. */
export const workerIndex = (): number => Number(process.env.TENANT_RELAY_WORKER ?? cluster.worker?.id ?? 0);

export async function runWorker(file: string, config: Config, logger: Logger): Promise<number> {
  const index = workerIndex();
  if (process.env.TENANT_RELAY_DRAIN_ONLY) return leaveThePrimary(await deliverLeftovers(file, index, logger));
  const relay = await startRelay(config, { logger, configFile: file, watchConfig: true, role: { kind: 'worker', index } }).catch((err: unknown) => {
    // Failed to start: the channel to the primary must not keep this process alive.
    leaveThePrimary(0);
    throw err;
  });
  serveThePrimary(relay);
  // The primary stops its workers; Ctrl-C reaches the whole group, and must not stop them twice.
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => relay.reload('SIGHUP'));
  await untilStopped({
    signals: ['SIGTERM'],
    primaryMayAsk: true,
    stop: async (signal) => {
      logger.info({ event: 'stopping', signal, graceMs: relay.config().ops.shutdownGraceMs, drainMs: relay.config().ops.drainMs });
      await relay.close();
    },
    hurry: exitNow(logger),
  });
  logger.info({ event: 'stopped' });
  logger.flush();
  return leaveThePrimary(0);
}

/** A worker's channel to the primary keeps it alive: closed when its relay has stopped, so it can exit. */
function leaveThePrimary(code: number): number {
  if (process.connected) process.disconnect();
  return code;
}

/** A worker for a spool no configured worker owns (the relay ran with more workers): deliver it, then end. */
async function deliverLeftovers(file: string, index: number, logger: Logger): Promise<number> {
  const config = loadConfigFile(file);
  const role = { kind: 'leftovers', spoolPath: SpoolLayout.ofWorker(config.delivery.spool.path, index), share: 1 / (config.workers + 1), startEvent: 'worker-delivering-leftovers' } as const;
  const relay = await startRelay(config, { logger, configFile: file, role });
  serveThePrimary(relay);
  process.on('SIGINT', () => {});
  let stopped = false;
  process.on('SIGTERM', () => {
    stopped = true;
  });
  process.on('message', (m: unknown) => {
    if (isStop(m)) stopped = true;
  });
  await waitUntilEmpty(relay.scheduler, { stopped: () => stopped, pollMs: 1000 });
  await relay.close();
  logger.info({ event: 'stopped', leftovers: relay.scheduler.size });
  logger.flush();
  return 0;
}

function serveThePrimary(relay: RunningRelay): void {
  // Constructing one in a worker installs prom-client's answer to the primary's metric requests.
  new prometheus.AggregatorRegistry();
  prometheus.AggregatorRegistry.setRegistries([relay.metrics.registry]);
  process.on('message', (message) => {
    if (!isToWorker(message)) return;
    void answer(relay, message.question).then(
      (value) => send({ relayIpc: 'answer', id: message.id, value }),
      () => send({ relayIpc: 'answer', id: message.id, value: null }),
    );
  });
  send({ relayIpc: 'listening', addresses: relay.addresses });
}

async function answer(relay: RunningRelay, q: Question): Promise<unknown> {
  switch (q.what) {
    case 'ready':
      return relay.readiness();
    case 'send-test':
      return (await relay.sendTest(q.token)) ?? null;
    case 'drain':
      void relay.drain(q.seconds * 1000);
      return relay.drainStatus();
    case 'undrain':
      return relay.undrain();
    case 'drain-status':
      return relay.drainStatus();
    case 'link-events':
      return relay.events.link(q.events);
    case 'link-bounce':
      return relay.events.linkBounce(q.queueId, q.reported);
    case 'count-events':
      relay.events.count(q.provider, q.result, q.n);
      return true;
  }
}

function send(message: FromWorker): void {
  if (process.connected) process.send?.(message);
}
