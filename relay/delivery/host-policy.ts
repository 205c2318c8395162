// For upstreams a tenant's side chose (platform records, tenant files, a candidate typed into the
// platform's settings page): the host may not resolve to the relay's own machine, link-local or metadata
// addresses, the ranges IANA sets aside (and, if asked, private networks), nor to an address that only
// wraps one of those (IPv4-mapped, IPv4-compatible, SIIT, NAT64, 6to4: the network would unwrap it to
// the address inside); the port must be one mail uses. The address that passed is the one connected to,
// so DNS cannot change it in between.
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { isInNetworks, networkList } from '../../config/networks.js';
import type { UpstreamHostPolicy } from '../../config/types.js';

// IANA special-purpose registries (RFC 6890 and its updates), metadata services, and the IPv6 forms that
// carry an IPv4 address inside them.
const SPECIAL = [
  '0.0.0.0/8', // "this network"
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local (cloud metadata at .169.254)
  '192.0.0.0/24', // IETF protocol assignments
  '192.0.2.0/24', // documentation (TEST-NET-1)
  '192.88.99.0/24', // 6to4 relay anycast
  '198.18.0.0/15', // benchmarking
  '198.51.100.0/24', // documentation (TEST-NET-2)
  '203.0.113.0/24', // documentation (TEST-NET-3)
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, and the broadcast address
  '100.100.100.200/32', // Alibaba Cloud metadata
  '168.63.129.16/32', // Azure's host (wire server, DNS, health)
  '::/128', // unspecified
  '::1/128', // loopback
  '100::/64', // discard-only
  '2001::/23', // IETF protocol assignments (Teredo 2001::/32 among them)
  '2001:db8::/32', // documentation
  'fe80::/10', // link-local
  'fec0::/10', // site-local (deprecated)
  'ff00::/8', // multicast
  'fd00:ec2::254/128', // AWS metadata over IPv6
];
const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7'];
// IPv6 forms that wrap an IPv4 address: matched against IPv6 addresses only (a BlockList also matches an
// IPv4 address against IPv4-mapped IPv6 rules, which would deny every IPv4 address).
const WRAPPERS = [
  '::/96', // IPv4-compatible (deprecated): ::a.b.c.d
  '::ffff:0:0/96', // IPv4-mapped: ::ffff:a.b.c.d
  '::ffff:0:0:0/96', // SIIT: ::ffff:0:a.b.c.d
  '64:ff9b::/96', // NAT64, well-known prefix
  '64:ff9b:1::/48', // NAT64, local-use
  '2002::/16', // 6to4
];

const WRAPPER_LIST = networkList(WRAPPERS);

/** The ports tenants may name unless a policy widens them: SMTP, submissions, submission, and 2525. */
export const MAIL_PORTS: readonly number[] = [25, 465, 587, 2525];

export type HostCheck = { readonly ok: true; readonly address: string } | { readonly ok: false; readonly reason: string };

/** Whether the policy says anything: one that denies nothing and allows any port is not applied. */
export function policyApplies(policy: UpstreamHostPolicy): boolean {
  return policy.denySpecialAddresses || policy.denyPrivateAddresses || policy.ports.length > 0;
}

/** The port, when the policy limits ports and this one is not among them: why it is refused. */
export function portRefusal(port: number, policy: UpstreamHostPolicy): string | undefined {
  if (policy.ports.length === 0 || policy.ports.includes(port)) return undefined;
  return `port ${port} is not one the upstream host policy allows (${policy.ports.join(', ')})`;
}

export async function checkUpstreamHost(host: string, policy: UpstreamHostPolicy, port?: number): Promise<HostCheck> {
  const badPort = port === undefined ? undefined : portRefusal(port, policy);
  if (badPort) return { ok: false, reason: badPort };
  const denied = networkList([...(policy.denySpecialAddresses ? SPECIAL : []), ...(policy.denyPrivateAddresses ? PRIVATE : [])]);
  const wrappers = policy.denySpecialAddresses ? WRAPPER_LIST : undefined;
  const allowed = networkList(policy.allow);
  let addresses: string[];
  try {
    addresses = net.isIP(host) ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  } catch (err) {
    return { ok: false, reason: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? err}` };
  }
  // Every address must pass: a name with one public and one internal address is not let through.
  const bad = addresses.find((a) => (isInNetworks(denied, a) || (net.isIPv6(a) && wrappers?.check(a, 'ipv6') === true)) && !isInNetworks(allowed, a));
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
