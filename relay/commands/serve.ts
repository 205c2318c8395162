// tenant-relay serve: run the relay, reload on SIGHUP or a file change, drain on SIGTERM.
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import { createLogger } from '../ops/log.js';
import { startRelay } from '../relay.js';
import { configFileFrom } from './config-file.js';

export async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const file = configFileFrom(values);
  const logger = createLogger();
  const relay = await startRelay(loadConfigFile(file), { logger, configFile: file, watchConfig: true });
  process.on('SIGHUP', () => relay.reload('SIGHUP'));
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // A second signal: the operator wants out now. Queued mail is on disk; nothing accepted is lost.
        logger.warn({ event: 'stopping-now', signal });
        logger.flush();
        process.exit(1);
      }
      stopping = true;
      logger.info({ event: 'stopping', signal, graceMs: relay.config().ops.shutdownGraceMs });
      relay.close().then(resolve, resolve);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  logger.info({ event: 'stopped' });
  logger.flush();
  return 0;
}
