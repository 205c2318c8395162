// Why the relay could not start, as one sentence naming the setting to change: a port another process
// holds, an address this machine does not have, a spool folder it may not write. `serve` logs it as one
// line (event start-failed, with the key) and exits 3, as the README's exit codes say.
import fs from 'node:fs';
import { PRIVATE_DIR } from './private-files.js';

export class StartupError extends Error {
  /** The config key at fault, as `check` names keys: `listen[0]`, `ops.port`, `delivery.spool.path`. */
  readonly key: string;

  constructor(key: string, message: string) {
    super(message);
    this.name = 'StartupError';
    this.key = key;
  }
}

const LISTEN_WHY: Record<string, string> = {
  EADDRINUSE: 'another process listens there already',
  EACCES: 'this process may not bind it (ports below 1024 need root or CAP_NET_BIND_SERVICE)',
  EADDRNOTAVAIL: 'it is not an address of this machine',
};

/** A failed listen as a StartupError naming its key; anything else unchanged. */
export function listenFailed(err: unknown, key: string, host: string, port: number): unknown {
  const why = LISTEN_WHY[(err as NodeJS.ErrnoException).code ?? ''];
  return why ? new StartupError(key, `cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port} (${key}): ${why}`) : err;
}

const SPOOL_WHY: Record<string, string> = {
  EACCES: 'permission denied (the folder must be writable by the user the relay runs as)',
  EPERM: 'permission denied (the folder must be writable by the user the relay runs as)',
  EROFS: 'the file system is read-only',
  ENOSPC: 'the volume is full',
  ENOTDIR: 'a part of the path is a file, not a folder',
};

/** A spool that cannot be opened, as a StartupError naming delivery.spool.path; anything else unchanged. */
export function spoolFailed(err: unknown, root: string): unknown {
  const why = SPOOL_WHY[(err as NodeJS.ErrnoException).code ?? ''];
  return why ? new StartupError('delivery.spool.path', `cannot use the spool folder ${root} (delivery.spool.path): ${why}`) : err;
}

/** The spool folder exists (made private if new) and this process may write it; else a StartupError. */
export function checkSpoolRoot(root: string): void {
  try {
    fs.mkdirSync(root, { recursive: true, mode: PRIVATE_DIR });
    fs.accessSync(root, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw spoolFailed(err, root);
  }
}
