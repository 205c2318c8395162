// tenant-relay serve: run the relay, reload on SIGHUP or a file change, drain on SIGTERM. With
// `workers: N` this process becomes the primary of N workers (relay/workers/primary.ts), and each worker
// runs this command again as one of them.
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import { createLogger, type Logger } from '../ops/log.js';
import { SpoolLayout } from '../queue/spool-layout.js';
import { type RunningRelay, startRelay } from '../relay.js';
import { StartupError } from '../startup-error.js';
import { isStop } from '../workers/ipc.js';
import { configFileFrom } from './config-file.js';

export async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const file = configFileFrom(values);
  const config = loadConfigFile(file);
  if (cluster.isPrimary && config.workers > 1) {
    const { runPrimary } = await import('../workers/primary.js');
    const logger = createLogger();
    return runPrimary(file, config, logger).catch((err: unknown) => startFailed(err, logger));
  }
  const index = cluster.isWorker ? Number(process.env.TENANT_RELAY_WORKER ?? cluster.worker?.id ?? 0) : 0;
  const logger = cluster.isWorker ? createLogger().child({ worker: index }) : createLogger();
  if (cluster.isWorker && process.env.TENANT_RELAY_DRAIN_ONLY) return leaveThePrimary(await deliverLeftovers(file, index, logger));
  let relay: RunningRelay;
  try {
    relay = await startRelay(config, {
      logger,
      configFile: file,
      watchConfig: true,
      ...(cluster.isWorker ? { spoolPath: SpoolLayout.ofWorker(config.delivery.spool.path, index), reusePort: true, limitShare: 1 / config.workers, ops: false, startEvent: 'worker-listening' } : {}),
    });
  } catch (err) {
    return leaveThePrimary(startFailed(err, logger));
  }
  // One process now, where there were workers before: what they left in their spools is delivered here.
  const leftovers = cluster.isWorker ? undefined : deliverLeftoversInProcess(file, config.delivery.spool.path, logger);
  if (cluster.isWorker) {
    const { serveThePrimary } = await import('../workers/worker.js');
    serveThePrimary(relay);
    // The primary stops its workers (SIGTERM); Ctrl-C reaches it, and must not stop them twice.
    process.on('SIGINT', () => {});
  }
  process.on('SIGHUP', () => relay.reload('SIGHUP'));
  await stopOnSignal(relay, logger, cluster.isWorker ? ['SIGTERM'] : ['SIGTERM', 'SIGINT'], () => leftovers?.close());
  return leaveThePrimary(0);
}

/**
 * A relay that cannot start says why in one log line, naming the setting at fault when one is (a port in
 * use: listen[0]), and exits 3. Anything else is logged with its stack, on the same one line.
 */
function startFailed(err: unknown, logger: Logger): number {
  if (err instanceof StartupError) logger.fatal({ event: 'start-failed', key: err.key }, err.message);
  else logger.fatal({ event: 'start-failed', err: String((err as Error)?.message ?? err), stack: (err as Error)?.stack }, 'the relay could not start');
  logger.flush();
  return 3;
}

/** A worker's channel to the primary keeps it alive: closed when its relay has stopped, so it can exit. */
function leaveThePrimary(code: number): number {
  if (cluster.isWorker && process.connected) process.disconnect();
  return code;
}

async function stopOnSignal(relay: RunningRelay, logger: Logger, signals: NodeJS.Signals[], alsoStop: () => Promise<void> | undefined = () => undefined): Promise<void> {
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      // The primary's request to stop, after a signal that already began it, is the same request.
      if (stopping && signal === 'primary') return;
      if (stopping) {
        // A second signal: the operator wants out now. Queued mail is on disk; nothing accepted is lost.
        logger.warn({ event: 'stopping-now', signal });
        logger.flush();
        process.exit(1);
      }
      stopping = true;
      logger.info({ event: 'stopping', signal, graceMs: relay.config().ops.shutdownGraceMs, drainMs: relay.config().ops.drainMs });
      Promise.all([relay.close(), alsoStop()]).then(() => resolve(), () => resolve());
    };
    for (const signal of signals) process.on(signal, () => stop(signal));
    process.on('message', (m: unknown) => {
      if (isStop(m)) stop('primary');
    });
  });
  logger.info({ event: 'stopped' });
  logger.flush();
}

/** A worker for a spool no configured worker owns (the relay ran with more workers): deliver it, then end. */
async function deliverLeftovers(file: string, index: number, logger: Logger): Promise<number> {
  const config = loadConfigFile(file);
  const relay = await startRelay(config, { logger, configFile: file, spoolPath: SpoolLayout.ofWorker(config.delivery.spool.path, index), listen: false, limitShare: 1 / (config.workers + 1), ops: false, startEvent: 'worker-delivering-leftovers' });
  const { serveThePrimary } = await import('../workers/worker.js');
  serveThePrimary(relay);
  process.on('SIGINT', () => {});
  let stopped = false;
  process.on('SIGTERM', () => {
    stopped = true;
  });
  process.on('message', (m: unknown) => {
    if (isStop(m)) stopped = true;
  });
  while (!stopped && relay.scheduler.size > 0) await new Promise((r) => setTimeout(r, 1000));
  await relay.close();
  logger.info({ event: 'stopped', leftovers: relay.scheduler.size });
  logger.flush();
  return 0;
}

function deliverLeftoversInProcess(file: string, root: string, logger: Logger): { close(): Promise<void> } {
  let stopped = false;
  let current: RunningRelay | undefined;
  const done = (async () => {
    for (const spool of SpoolLayout.spoolsUnder(root)) {
      if (spool.index === 0 || stopped || !SpoolLayout.holdsMail(spool.path)) continue;
      current = await startRelay(loadConfigFile(file), { logger: logger.child({ leftovers: spool.path }), spoolPath: spool.path, listen: false, ops: false, startEvent: 'delivering-leftovers' });
      while (!stopped && current.scheduler.size > 0) await new Promise((r) => setTimeout(r, 1000));
      await current.close();
      current = undefined;
    }
  })().catch((err: Error) => logger.error({ event: 'leftovers-failed', err: err.message }));
  return {
    close: async () => {
      stopped = true;
      await done;
    },
  };
}
