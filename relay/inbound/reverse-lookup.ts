// The client's name for the Received header (reverse DNS), as Postfix's smtpd_peername_lookup: never for
// a loopback client, and never longer than the snapshot's timeout.
import dns from 'node:dns/promises';
import { isLoopbackHost } from '../../config/networks.js';
import type { Config } from '../../config/types.js';

/** Reverse DNS of a client, within the snapshot's timeout; an answer of none when it is off or the client is local. */
export function reverseLookup(ip: string, inbound: Config['inbound'], done: (err: Error | null, names?: string[]) => void): void {
  if (!inbound.reverseLookup || isLoopbackHost(ip)) return done(null, []);
  resolverFor(inbound.reverseLookupTimeoutMs)
    .reverse(ip)
    .then(
      (names) => done(null, names),
      (err: Error) => done(err),
    );
}

let resolver: { timeoutMs: number; resolver: dns.Resolver } | undefined;
const resolverFor = (timeoutMs: number) => {
  if (resolver?.timeoutMs !== timeoutMs) resolver = { timeoutMs, resolver: new dns.Resolver({ timeout: timeoutMs, tries: 1 }) };
  return resolver.resolver;
};
