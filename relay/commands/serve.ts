// tenant-relay serve: runs this process in its role: the one relay, or with `workers: N` the primary of N
// workers (each worker runs this command again, as a worker). A start that fails says why in one log line.
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import { createLogger, type Logger } from '../log.js';
import { logWarnings } from '../node-warnings.js';
import { StartupError } from '../startup-error.js';
import { configFileFrom } from './config-file.js';

export async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const file = configFileFrom(values);
  const config = loadConfigFile(file);
  try {
    if (cluster.isWorker) {
      const { runWorker, workerIndex } = await import('../runtime/worker.js');
      const logger = createLogger().child({ worker: workerIndex() });
      logWarnings(logger);
      return await runWorker(file, config, logger).catch((err: unknown) => startFailed(err, logger));
    }
    const logger = createLogger();
    logWarnings(logger);
    const run = config.workers > 1 ? (await import('../runtime/primary.js')).runPrimary : (await import('../runtime/single.js')).runSingle;
    return await run(file, config, logger).catch((err: unknown) => startFailed(err, logger));
  } catch (err) {
    return startFailed(err, createLogger());
  }
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
