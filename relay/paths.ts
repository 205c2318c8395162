// Files that ship with the package, found from this module whether it runs from relay/ or dist/relay/.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('tenant-relay: cannot find the package root');
    dir = parent;
  }
  return dir;
}

/** The development config `npm start` runs on when no --config is given. */
export const defaultConfigFile = path.join(packageRoot(), 'config', 'default.yaml');
