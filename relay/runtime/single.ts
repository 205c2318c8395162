// The one relay process (workers: 1): it takes mail and delivers it, reloads on SIGHUP (and when the file
// changes), and stops gracefully on SIGTERM or SIGINT. Where there were workers before, what they left in
// their spools is delivered here too, one spool at a time.
import { loadConfigFile } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import type { Logger } from '../log.js';
import { SpoolLayout } from '../queue/spool-layout.js';
import { waitUntilEmpty } from './drain.js';
import { exitNow, untilStopped } from './signals.js';
import { type RunningRelay, startRelay } from './start-relay.js';

export async function runSingle(file: string, config: Config, logger: Logger): Promise<number> {
  const relay = await startRelay(config, { logger, configFile: file, watchConfig: true });
  const leftovers = deliverLeftovers(file, config.delivery.spool.path, logger);
  process.on('SIGHUP', () => relay.reload('SIGHUP'));
  await untilStopped({
    signals: ['SIGTERM', 'SIGINT'],
    stop: async (signal) => {
      logger.info({ event: 'stopping', signal, graceMs: relay.config().ops.shutdownGraceMs, drainMs: relay.config().ops.drainMs });
      await Promise.all([relay.close(), leftovers.close()]);
    },
    hurry: exitNow(logger),
  });
  logger.info({ event: 'stopped' });
  logger.flush();
  return 0;
}

/** The spools of workers of an earlier run, delivered in this process beside the relay. */
function deliverLeftovers(file: string, root: string, logger: Logger): { close(): Promise<void> } {
  let stopped = false;
  let current: RunningRelay | undefined;
  const done = (async () => {
    for (const spool of SpoolLayout.spoolsUnder(root)) {
      if (spool.index === 0 || stopped || !SpoolLayout.holdsMail(spool.path)) continue;
      current = await startRelay(loadConfigFile(file), { logger: logger.child({ leftovers: spool.path }), role: { kind: 'leftovers', spoolPath: spool.path, share: 1, startEvent: 'delivering-leftovers' } });
      await waitUntilEmpty(current.scheduler, { stopped: () => stopped, pollMs: 1000 });
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
