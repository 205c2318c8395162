// The secret files of the snapshot in force, watched: the files its `${file:}` references read
// (passwords, client secrets, keys, tokens) and its client certificates. A file rotated in place (a
// Kubernetes Secret, a certbot renewal) reloads the config, logged with the file's path and never its
// value, and the next connection uses the new secret: the pools key on the settings themselves, and
// those of the old ones are closed, so an old password is never sent again.
import { certificatesOf } from '../../config/certificate-names.js';
import type { Config } from '../../config/types.js';
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

function filesOf(config: Config): Set<string> {
  return new Set([...config.secretFiles, ...certificatesOf(config).flatMap((c) => c.files)]);
}
