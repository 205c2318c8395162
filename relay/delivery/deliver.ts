// The delivery edge: one entry point whatever the upstream kind.
import type { Upstream, UpstreamHostPolicy } from '../../config/types.js';
import { Replies } from '../errors.js';
import type { DeliveryResult, Envelope } from '../types.js';
import { checkUpstreamHost } from './host-policy.js';
import { deliverToMaildir } from './maildir.js';
import type { UpstreamPools } from './pools.js';
import { sendViaSmtp } from './smtp.js';

/** The bytes to send: in memory (pass-through) or a spool file, which a pool can re-read to resend. */
export type MessageSource = Buffer | { readonly path: string };

export async function deliver(
  pools: UpstreamPools,
  upstream: Upstream,
  envelope: Envelope,
  message: MessageSource,
  hostPolicy: UpstreamHostPolicy,
): Promise<DeliveryResult> {
  if (upstream.kind === 'maildir') return deliverToMaildir(upstream, envelope, message);
  if (upstream.owner === 'tenant' && (hostPolicy.denySpecialAddresses || hostPolicy.denyPrivateAddresses)) {
    const checked = await checkUpstreamHost(upstream.host, hostPolicy);
    if (!checked.ok) {
      const reply = Replies.upstreamHostForbidden(upstream.name, checked.reason);
      return { upstream: upstream.name, outcomes: envelope.rcptTo.map((recipient) => ({ recipient, status: 'temp', reply })) };
    }
    // Connect to the address that was checked; the certificate is still checked against the name.
    return sendViaSmtp(pools, { ...upstream, host: checked.address, servername: upstream.servername ?? upstream.host }, envelope, message);
  }
  return sendViaSmtp(pools, upstream, envelope, message);
}
