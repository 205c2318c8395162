// The secret files of the snapshot in force, watched: the files its `${file:}` references read
// (passwords, client secrets, keys, tokens) and its client certificates. A file rotated in place (a
// Kubernetes Secret, a certbot renewal) reloads the config, logged with the file's path and never its
// value, and the next connection uses the new secret: the pools key on the settings themselves, and
// those of the old ones are closed, so an old password is never sent again.
import { X509Certificate } from 'node:crypto';
import type { ClientCertificate, Config } from '../../config/types.js';
import type { Component } from './lifecycle.js';
import { watchFile } from './reload.js';

export function watchSecretFiles(initial: Config, reload: (file: string) => void): Component {
  const watchers = new Map<string, () => void>();
  const sync = (config: Config) => {
    const files = filesOf(config);
    for (const [file, stop] of watchers) {
      if (files.has(file)) continue;
      stop();
      watchers.delete(file);
    }
    for (const file of files) if (!watchers.has(file)) watchers.set(file, watchFile(file, () => reload(file)));
  };
  sync(initial);
  return {
    apply: sync,
    close: () => {
      for (const stop of watchers.values()) stop();
      watchers.clear();
    },
  };
}

/** When each client certificate of the snapshot expires (seconds since the epoch), by its label: for the metric and its alert. */
export function clientCertificateExpiries(config: Config): Map<string, number> {
  const expiries = new Map<string, number>();
  for (const c of certificatesOf(config)) if (!expiries.has(c.label)) expiries.set(c.label, expiryOf(c));
  return expiries;
}

/** Certificates are frozen per snapshot: each is parsed once, not at every scrape. */
const expiryCache = new WeakMap<ClientCertificate, number>();
function expiryOf(c: ClientCertificate): number {
  let at = expiryCache.get(c);
  if (at === undefined) expiryCache.set(c, (at = Math.floor(new Date(new X509Certificate(c.cert).validTo).getTime() / 1000)));
  return at;
}

function certificatesOf(config: Config): ClientCertificate[] {
  const upstreams = [config.smarthost, ...config.tenants.map((t) => t.upstream)];
  return [...upstreams.map((u) => (u?.kind === 'smtp' ? u.clientCertificate : undefined)), ...config.clientCertificates.values()].filter((c): c is ClientCertificate => c !== undefined);
}

function filesOf(config: Config): Set<string> {
  return new Set([...config.secretFiles, ...certificatesOf(config).flatMap((c) => c.files)]);
}
