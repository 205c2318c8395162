// A TLS listener's certificate and key, read from disk and read again when either file changes, so a
// renewed certificate (certbot, cert-manager) is served without a restart.
import fs from 'node:fs';
import type { Listener } from '../../config/types.js';
import type { Logger } from '../ops/log.js';

export function readCertificate(listener: Listener): { key: Buffer; cert: Buffer } | undefined {
  if (listener.tls === 'none' || !listener.cert || !listener.key) return undefined;
  return { key: fs.readFileSync(listener.key), cert: fs.readFileSync(listener.cert) };
}

/** Polls the files (robust to the rename-into-place that renewals do); returns a stop function. */
export function watchCertificate(listener: Listener, update: (material: { key: Buffer; cert: Buffer }) => void, logger: Logger, intervalMs = 2000): () => void {
  const files = [listener.cert, listener.key].filter((f): f is string => typeof f === 'string');
  if (listener.tls === 'none' || files.length < 2) return () => {};
  const reload = () => {
    try {
      const material = readCertificate(listener);
      if (material) update(material);
      logger.info({ event: 'certificate-reloaded', listener: `${listener.host}:${listener.port}` });
    } catch (err) {
      // Half-written during a renewal, most likely: keep serving the old one, try at the next change.
      logger.warn({ event: 'certificate-reload-failed', err: (err as Error).message });
    }
  };
  for (const file of files) fs.watchFile(file, { interval: intervalMs }, (now, before) => now.mtimeMs !== before.mtimeMs && reload());
  return () => {
    for (const file of files) fs.unwatchFile(file);
  };
}
