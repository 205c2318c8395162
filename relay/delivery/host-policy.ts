// For platforms that let tenant admins type in their SMTP host: a tenant's upstream must not resolve to
// the relay's own machine, a link-local or cloud-metadata address, or (optionally) a private network.
// The address that passed the check is the one connected to, so DNS cannot change it in between.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { UpstreamHostPolicy } from '../../config/types.js';
import { isInNetworks, networkList } from '../../config/networks.js';

const SPECIAL = ['127.0.0.0/8', '0.0.0.0/8', '169.254.0.0/16', '100.100.100.200/32', '::1/128', '::/128', 'fe80::/10', 'fd00:ec2::254/128'];
const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7'];

export type HostCheck = { readonly ok: true; readonly address: string } | { readonly ok: false; readonly reason: string };

export async function checkUpstreamHost(host: string, policy: UpstreamHostPolicy): Promise<HostCheck> {
  const denied = networkList([...SPECIAL, ...(policy.denyPrivateAddresses ? PRIVATE : [])]);
  const allowed = networkList(policy.allow);
  let addresses: string[];
  try {
    addresses = net.isIP(host) ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  } catch (err) {
    return { ok: false, reason: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? err}` };
  }
  // Every address must pass: a name with one public and one internal address is not let through.
  const bad = addresses.find((a) => isInNetworks(denied, a) && !isInNetworks(allowed, a));
  if (bad) return { ok: false, reason: `${host} resolves to ${bad}, which the upstream host policy forbids` };
  const [first] = addresses;
  return first ? { ok: true, address: first } : { ok: false, reason: `${host} has no address` };
}

/**
 * The upstream, connected to the address that was checked rather than resolved again. The certificate is
 * still checked against the name (SNI carries only names: a host that is an address keeps none).
 */
export function pinnedTo<U extends { readonly host: string; readonly servername?: string }>(upstream: U, address: string): U {
  const servername = upstream.servername ?? (net.isIP(upstream.host) ? undefined : upstream.host);
  return { ...upstream, host: address, ...(servername !== undefined ? { servername } : {}) };
}
