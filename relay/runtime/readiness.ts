// What /readyz says of a relay: its config is loaded, every listener is up, the spool is writable (looked
// at most every 2 s, not per scrape), and it is not draining. No file paths: /readyz is open to whoever
// reaches the ops listener.
import fs from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { InboundServer } from '../inbound/server.js';
import type { Readiness } from '../ops/http.js';
import { PRIVATE_FILE } from '../private-files.js';

export function readinessOf(inbound: () => readonly InboundServer[], probeFile: string, draining: () => boolean): () => Promise<Readiness> {
  const spoolWritable = cachedFor(2000, () => probeWritable(probeFile));
  return async () => {
    const checks = { config: 'loaded', listening: inbound().every((s) => s.listening), spoolWritable: await spoolWritable(), draining: draining() };
    return { ready: checks.listening && checks.spoolWritable && !checks.draining, checks };
  };
}

async function probeWritable(probe: string): Promise<boolean> {
  try {
    await fs.writeFile(probe, 'ok', { mode: PRIVATE_FILE });
    await fs.rm(probe);
    return true;
  } catch {
    return false;
  }
}

/** Remembers an async answer for `ms`, so a per-request check costs a syscall at most once in that time. */
function cachedFor(ms: number, compute: () => Promise<boolean>): () => Promise<boolean> {
  let at = -Infinity;
  let value = Promise.resolve(true);
  return () => {
    if (performance.now() - at >= ms) {
      at = performance.now();
      value = compute().catch(() => false);
    }
    return value;
  };
}
