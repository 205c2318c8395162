// What a listener's sessions read from the snapshot and the commands: smtp-server's own limits, the
// networks that may send without AUTH (built once per snapshot), the SIZE a client declared.
import type { SMTPServerAddress } from 'smtp-server';
import { networkList } from '../../config/networks.js';
import type { Config } from '../../config/types.js';

/** The limits of smtp-server's own that a snapshot sets. */
export function limitsOf(config: Config) {
  return {
    size: config.maxMessageSizeBytes,
    maxClients: config.inbound.maxConnections,
    maxRecipients: config.inbound.maxRecipients,
    socketTimeout: config.inbound.idleTimeoutMs,
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
export function declaredSize(address: SMTPServerAddress): number | undefined {
  const size = Number((address.args as Record<string, unknown> | false | undefined) ? (address.args as Record<string, string>).SIZE : undefined);
  return Number.isInteger(size) && size > 0 ? size : undefined;
}
