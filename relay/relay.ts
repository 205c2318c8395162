// Wires the stages together: listeners in, pooled upstreams out, one config snapshot at a time.
import type { AddressInfo } from 'node:net';
import type { SMTPServer } from 'smtp-server';
import type { Config } from '../config/types.js';
import { UpstreamCapabilities } from './delivery/capabilities.js';
import { UpstreamPools } from './delivery/pools.js';
import { watchCertificate } from './inbound/certificates.js';
import { createInboundServer } from './inbound/server.js';
import { TenantRates } from './queue/rates.js';
import { Scheduler } from './queue/scheduler.js';
import { Spool, type SpoolIo } from './queue/spool.js';
import type { Logger } from './ops/log.js';

export interface RelayOptions {
  readonly logger: Logger;
  /** Run the delivery scheduler on timers (default). Tests of the queue drive it by hand. */
  readonly schedulerTimers?: boolean;
  /** Replaces the spool's fsync and rename: how tests make the disk fail. */
  readonly spoolIo?: SpoolIo;
}

export interface RunningRelay {
  /** Where each listener is bound (the real port when the config asked for port 0). */
  readonly addresses: readonly { readonly host: string; readonly port: number }[];
  /** The snapshot new transactions use. */
  config(): Config;
  readonly spool: Spool;
  readonly scheduler: Scheduler;
  /** Stops listening, lets sessions finish within `graceMs`, then closes upstream pools. */
  close(graceMs?: number): Promise<void>;
}

export async function startRelay(initial: Config, options: RelayOptions): Promise<RunningRelay> {
  const current = initial;
  const config = () => current;
  const pools = new UpstreamPools(initial.hostname);
  const edge = { pools, capabilities: new UpstreamCapabilities(initial.hostname) };
  const spool = new Spool(initial.delivery.spool.path, { fsync: initial.delivery.spool.fsync, ...(options.spoolIo ? { io: options.spoolIo } : {}) });
  // The spool is read before the listeners open: what was accepted before a crash goes out first.
  const rates = new TenantRates();
  const scheduler = new Scheduler({ spool, config, edge, rates, logger: options.logger });
  await scheduler.start({ timers: options.schedulerTimers ?? true });
  const spoolHasRoom = cachedFor(1000, async () => (await spool.freeBytes()) >= current.delivery.spool.minFreeBytes);
  const deps = { config, edge, spool, scheduler, spoolHasRoom, rates, logger: options.logger };
  const servers: SMTPServer[] = [];
  const stopWatching: (() => void)[] = [];
  try {
    for (const listener of initial.listen) {
      const server = createInboundServer(listener, deps);
      stopWatching.push(watchCertificate(listener, server, options.logger));
      await new Promise<void>((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(listener.port, listener.host, () => {
          server.server.off('error', reject);
          resolve();
        });
      });
      servers.push(server);
    }
  } catch (err) {
    for (const stop of stopWatching) stop();
    await Promise.all(servers.map((s) => closeServer(s, 0)));
    await scheduler.stop(0);
    pools.close();
    throw err;
  }
  const addresses = servers.map((s) => {
    const a = s.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  });
  options.logger.info({ event: 'listening', addresses, config: initial.source, tenants: initial.tenants.length });
  return {
    addresses,
    config,
    spool,
    scheduler,
    async close(graceMs = 30_000) {
      for (const stop of stopWatching) stop();
      await Promise.all(servers.map((s) => closeServer(s, graceMs)));
      // Attempts still running after the grace period are cut; their state on disk says "retry".
      await scheduler.stop(graceMs);
      pools.close();
    },
  };
}

/** Remembers an async answer for `ms`, so a per-command check costs a syscall at most once in that time. */
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

function closeServer(server: SMTPServer, graceMs: number): Promise<void> {
  // smtp-server waits `closeTimeout` for open sessions before it cuts them.
  server.options.closeTimeout = Math.max(1, graceMs); // 0 would mean "the default, 30 s"
  return new Promise((resolve) => server.close(() => resolve()));
}
