// Postmark's events name Postmark's own message id, not the message's Message-ID, and carry no signature:
// what links one back is the metadata Postmark echoes. Mail to Postmark's SMTP hosts leaves with
// `X-PM-Metadata-tenant-relay: <queue id>-<mac>` (Postmark takes X-PM-Metadata-* headers as metadata and
// strips them); the mac, an HMAC under providerEvents.postmark.signingKey, means an event can only be
// linked to a message this relay sent, whatever else the request says.
import type { Upstream } from '../types.js';
import { queueIdOfSigned, signedQueueId } from './signed-queue-id.js';

/** The metadata key (Postmark allows 20 characters) and so the header's name. */
export const POSTMARK_METADATA_KEY = 'tenant-relay';

export interface PostmarkLinkSettings {
  readonly signingKey: string;
  /** The upstream hosts that are Postmark: only mail to these carries the header. */
  readonly smtpHosts: readonly string[];
}


/** The header line (CRLF-ended) a message to `upstream` starts with, or undefined when it is not Postmark. */
export function postmarkLinkHeader(queueId: string, upstream: Upstream, s: PostmarkLinkSettings | undefined): Buffer | undefined {
  if (!s || upstream.kind !== 'smtp' || !s.smtpHosts.includes(upstream.host.toLowerCase())) return undefined;
  return Buffer.from(`X-PM-Metadata-${POSTMARK_METADATA_KEY}: ${signedQueueId('postmark', queueId, s.signingKey)}\r\n`);
}

/** The queue id a metadata value names, if the relay made it; else undefined. */
export function queueIdOfPostmarkLink(value: unknown, signingKey: string): string | undefined {
  return typeof value === 'string' ? queueIdOfSigned('postmark', value, signingKey) : undefined;
}
