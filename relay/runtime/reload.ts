// Hot reload: on SIGHUP or when the file changes (debounced), the file is read and validated whole. A
// valid one becomes the snapshot for new transactions; an invalid one is logged with its file:line
// errors and the running snapshot stays. Transactions in flight keep the snapshot they started with.
import fs from 'node:fs';
import { ConfigError, formatIssue, loadConfigFile } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import type { Logger } from '../log.js';

export type ReloadResult = { readonly ok: true; readonly config: Config; readonly restartNeeded: readonly string[] } | { readonly ok: false; readonly errors: readonly string[] };

/** The settings a running relay keeps until it restarts: those of `next` that differ from what it started with. */
export function restartNeeded(started: Config, next: Config): string[] {
  return [
    JSON.stringify(next.listen) !== JSON.stringify(started.listen) && 'listen',
    next.delivery.spool.path !== started.delivery.spool.path && 'delivery.spool.path',
    JSON.stringify(next.ops) !== JSON.stringify(started.ops) && 'ops',
    next.hostname !== started.hostname && 'hostname',
    JSON.stringify(withoutLogin(next.limits)) !== JSON.stringify(withoutLogin(started.limits)) && 'limits',
    next.workers !== started.workers && 'workers',
  ].filter((s): s is string => typeof s === 'string');
}

/** Limits without Redis's login: a rotated password is taken at the next connection (shared-state.ts). */
function withoutLogin(limits: Config['limits']): unknown {
  if (!limits.redis) return limits;
  const url = new URL(limits.redis.url);
  url.username = '';
  url.password = '';
  return { ...limits, redis: { ...limits.redis, url: url.href } };
}

export function reloadFrom(file: string, apply: (next: Config) => readonly string[], logger: Logger, why: string): ReloadResult {
  let next: Config;
  try {
    next = loadConfigFile(file);
  } catch (err) {
    const errors = err instanceof ConfigError ? err.issues.map(formatIssue) : [(err as Error).message];
    logger.error({ event: 'config-reload-failed', why, errors }, 'config not reloaded; the running one stays in force');
    return { ok: false, errors };
  }
  const restartNeeded = apply(next);
  logger.info({ event: 'config-reloaded', why, tenants: next.tenants.length, restartNeeded });
  if (restartNeeded.length > 0) logger.warn({ event: 'config-restart-needed', settings: restartNeeded }, 'these settings take effect at the next restart');
  return { ok: true, config: next, restartNeeded };
}

/**
 * Calls `onChange` once the file has stopped changing for `debounceMs`; polls, so a rename-into-place is
 * seen. What it compares with is the file as it is when the watch starts, read at once: fs.watchFile took
 * its first look later, in the thread pool, so a file rewritten in between (same size, same inode: a
 * rotated secret) became its starting point and the change was never seen.
 */
export function watchFile(file: string, onChange: () => void, debounceMs = 300, intervalMs = 500): () => void {
  let debounce: NodeJS.Timeout | undefined;
  let known = stampNow(file);
  let looking = false;
  const poll = setInterval(() => {
    if (looking) return;
    looking = true;
    fs.stat(file, (err, now) => {
      looking = false;
      const seen = err ? MISSING : stampOf(now);
      if (seen === known) return;
      known = seen;
      clearTimeout(debounce);
      debounce = setTimeout(onChange, debounceMs);
    });
  }, intervalMs);
  poll.unref();
  return () => {
    clearInterval(poll);
    clearTimeout(debounce);
  };
}

const MISSING = 'missing';
const stampOf = (s: fs.Stats) => `${s.ino}:${s.size}:${s.mtimeMs}`;

function stampNow(file: string): string {
  try {
    return stampOf(fs.statSync(file));
  } catch {
    return MISSING;
  }
}

/**
 * A tenant file is polled like the config file; a directory is watched (inotify), since adding, removing,
 * renaming into place or editing any of its files must be seen, and polling 10,000 files would not do.
 */
export function watchTenantFiles(entry: string, onChange: () => void, debounceMs = 300): () => void {
  let isDirectory = false;
  try {
    isDirectory = fs.statSync(entry).isDirectory();
  } catch {
    // Gone since the load: watch the path as a file, so its return is seen.
  }
  if (!isDirectory) return watchFile(entry, onChange, debounceMs);
  let timer: NodeJS.Timeout | undefined;
  const watcher = fs.watch(entry, { persistent: false }, () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  });
  watcher.on('error', () => watcher.close());
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}
