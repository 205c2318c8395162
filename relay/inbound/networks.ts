// The networks whose clients may send without AUTH. Everyone else must authenticate: no open relay.
import net from 'node:net';
import { parseCidr } from '../../config/validate.js';

export function networkList(cidrs: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const text of cidrs) {
    const cidr = parseCidr(text);
    if (cidr) list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return list;
}

export function isInNetworks(list: net.BlockList, address: string): boolean {
  // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return list.check(mapped, 'ipv4');
  return list.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
