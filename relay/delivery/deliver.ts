// The delivery edge: one entry point whatever the upstream kind.
import type { Upstream } from '../../config/types.js';
import type { DeliveryResult, Envelope } from '../types.js';
import { deliverToMaildir } from './maildir.js';
import type { UpstreamPools } from './pools.js';
import { sendViaSmtp } from './smtp.js';

/** The bytes to send: in memory (pass-through) or a spool file, which a pool can re-read to resend. */
export type MessageSource = Buffer | { readonly path: string };

export function deliver(pools: UpstreamPools, upstream: Upstream, envelope: Envelope, message: MessageSource): Promise<DeliveryResult> {
  return upstream.kind === 'maildir' ? deliverToMaildir(upstream, envelope, message) : sendViaSmtp(pools, upstream, envelope, message);
}
