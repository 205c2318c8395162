// The delivery edge: one entry point whatever the upstream kind.
import type { Upstream } from '../../config/types.js';
import type { DeliveryResult, Envelope } from '../types.js';
import { deliverToMaildir } from './maildir.js';
import type { UpstreamPools } from './pools.js';
import { sendViaSmtp } from './smtp.js';

export function deliver(pools: UpstreamPools, upstream: Upstream, envelope: Envelope, message: Buffer): Promise<DeliveryResult> {
  return upstream.kind === 'maildir' ? deliverToMaildir(upstream, envelope, message) : sendViaSmtp(pools, upstream, envelope, message);
}
