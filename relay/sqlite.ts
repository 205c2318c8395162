// node:sqlite, loaded when a store is opened (the trace, the suppressions), not at start: Node 22 prints an
// experimental warning as it loads.
import { createRequire } from 'node:module';

export function sqlite(): typeof import('node:sqlite') {
  return createRequire(import.meta.url)('node:sqlite') as typeof import('node:sqlite');
}
