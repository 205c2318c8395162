// A TLS certificate and key (an SMTP listener's, the ops listener's), read from disk and read again when
// either file changes, so a renewed certificate (certbot, cert-manager) is served without a restart.
import fs from 'node:fs';
import type { Listener } from '../../config/types.js';
import type { Logger } from '../log.js';

export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
  /** What serves it, for the log ("127.0.0.1:2525", "ops"). */
  readonly name: string;
}

/** A listener's files, when it speaks TLS. */
export function certificateFilesOf(listener: Listener): CertificateFiles | undefined {
  if (listener.tls === 'none' || !listener.cert || !listener.key) return undefined;
  return { cert: listener.cert, key: listener.key, name: `${listener.host}:${listener.port}` };
}

export function readCertificate(files: CertificateFiles | undefined): { key: Buffer; cert: Buffer } | undefined {
  if (!files) return undefined;
  return { key: fs.readFileSync(files.key), cert: fs.readFileSync(files.cert) };
}

/** Polls the files (robust to the rename-into-place that renewals do); returns a stop function. */
export function watchCertificate(files: CertificateFiles | undefined, update: (material: { key: Buffer; cert: Buffer }) => void, logger: Logger, intervalMs = 2000): () => void {
  if (!files) return () => {};
  const reload = () => {
    try {
      const material = readCertificate(files);
      if (material) update(material);
      logger.info({ event: 'certificate-reloaded', listener: files.name });
    } catch (err) {
      // Half-written during a renewal, most likely: keep serving the old one, try at the next change.
      logger.warn({ event: 'certificate-reload-failed', listener: files.name, err: (err as Error).message });
    }
  };
  for (const file of [files.cert, files.key]) fs.watchFile(file, { interval: intervalMs }, (now, before) => now.mtimeMs !== before.mtimeMs && reload());
  return () => {
    for (const file of [files.cert, files.key]) fs.unwatchFile(file);
  };
}
