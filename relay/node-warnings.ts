// Node's own warnings (deprecations, experimental APIs, listener leaks) go where the command's output goes:
// printed as Node prints them by the CLI's commands, and as JSON log lines by `serve`, whose stderr a log
// collector parses line by line: a raw "(node:123) Warning: ..." line there is a line it cannot read.
import type { Logger } from './log.js';

/**
 * Node 22 calls node:sqlite (the message trace) experimental and says so at every start: nothing an
 * operator can act on. Every other warning is shown.
 */
function isNoise(w: Error): boolean {
  return w.name === 'ExperimentalWarning' && /SQLite/i.test(w.message);
}

/** For the commands: each warning printed as Node prints it, but the noise. */
export function printWarnings(): void {
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (!isNoise(w)) console.error(`(node:${process.pid}) ${w.name}: ${w.message}`);
  });
}

/** For `serve`: each warning a log line (event node-warning), capped like any text from outside. */
export function logWarnings(logger: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (isNoise(w)) return;
    const code = (w as Error & { code?: unknown }).code;
    logger.warn({ event: 'node-warning', name: w.name, ...(typeof code === 'string' ? { code } : {}) }, w.message.slice(0, 1000));
  });
}
