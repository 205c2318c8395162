// What a listener's sessions read from the snapshot and the commands: the SMTP layer's limits, the
// networks that may send without AUTH (built once per snapshot), the SIZE a client declared.
import { networkList } from '../../config/networks.js';
import type { Config } from '../../config/types.js';
import type { ListenerLimits } from './smtp/listener.js';
import type { SmtpAddress } from './smtp/session-types.js';

/** The SMTP layer's limits that a snapshot sets. */
export function limitsOf(config: Config): ListenerLimits {
  return {
    size: config.maxMessageSizeBytes,
    maxClients: config.inbound.maxConnections,
    maxRecipients: config.inbound.maxRecipients,
    idleTimeoutMs: config.inbound.idleTimeoutMs,
  };
}

/** The networks that may send without AUTH, built once per snapshot rather than per command. */
export function trustedNetworks() {
  let built = { config: undefined as Config | undefined, list: networkList([]) };
  return (config: Config) => {
    if (built.config !== config) built = { config, list: networkList(config.inbound.allowUnauthenticatedFrom) };
    return built.list;
  };
}

/** SIZE= from MAIL FROM (RFC 1870), when the client declared one. */
export function declaredSize(address: SmtpAddress): number | undefined {
  const size = Number(address.args.SIZE);
  return Number.isInteger(size) && size > 0 ? size : undefined;
}
