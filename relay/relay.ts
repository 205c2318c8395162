// Wires the stages together: listeners in, pooled upstreams out, one config snapshot at a time.
import type { AddressInfo } from 'node:net';
import type { SMTPServer } from 'smtp-server';
import type { Config } from '../config/types.js';
import { UpstreamPools } from './delivery/pools.js';
import { createInboundServer } from './inbound/server.js';
import type { Logger } from './ops/log.js';

export interface RelayOptions {
  readonly logger: Logger;
}

export interface RunningRelay {
  /** Where each listener is bound (the real port when the config asked for port 0). */
  readonly addresses: readonly { readonly host: string; readonly port: number }[];
  /** The snapshot new transactions use. */
  config(): Config;
  /** Stops listening, lets sessions finish within `graceMs`, then closes upstream pools. */
  close(graceMs?: number): Promise<void>;
}

export async function startRelay(initial: Config, options: RelayOptions): Promise<RunningRelay> {
  const current = initial;
  const pools = new UpstreamPools(initial.hostname);
  const deps = { config: () => current, pools, logger: options.logger };
  const servers: SMTPServer[] = [];
  try {
    for (const listener of initial.listen) {
      const server = createInboundServer(listener, deps);
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
    await Promise.all(servers.map((s) => closeServer(s, 0)));
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
    config: () => current,
    async close(graceMs = 30_000) {
      await Promise.all(servers.map((s) => closeServer(s, graceMs)));
      pools.close();
    },
  };
}

function closeServer(server: SMTPServer, graceMs: number): Promise<void> {
  // smtp-server waits `closeTimeout` for open sessions before it cuts them.
  server.options.closeTimeout = Math.max(1, graceMs); // 0 would mean "the default, 30 s"
  return new Promise((resolve) => server.close(() => resolve()));
}
