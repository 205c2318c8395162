// One tenant: how its mail is recognised, where it goes, what it is sent as and signed with, its limits.
import { z } from 'zod';
import { DELIVERY_EVENT_TYPES, DELIVERY_MODES, SUPPRESSION_ACTIONS } from '../vocabulary.js';
import { address, domain, domainPattern, tenantId } from './fields.js';
import { upstreamSchema } from './upstream.js';

export const dkimKey = {
  selector: domain.optional(),
  // Default: the domain of the From header the message leaves with, so the signature aligns for DMARC.
  signingDomain: domain.optional(),
  // PEM text (RSA or ed25519): use ${file:/path} or ${ENV}.
  privateKey: z.string().min(1).optional(),
};

// How much of the shared spool one tenant's waiting mail may take; past it, that tenant's clients get
// 452 4.3.1 and nobody else does.
export const spoolQuota = {
  maxMessages: z.int().min(1).max(100_000_000),
  maxMegabytes: z.number().positive().max(100_000_000),
};

const tenantDelivery = z
  .strictObject({
    mode: z.enum(DELIVERY_MODES).optional(),
    // After temporary failures lasting this long, send through the global smarthost instead (never on a 5xx).
    fallbackToSmarthostAfterMinutes: z.number().positive().optional(),
    // This tenant's share of the spool, in place of delivery.spool.perTenant.
    spool: z.strictObject({ maxMessages: spoolQuota.maxMessages.optional(), maxMegabytes: spoolQuota.maxMegabytes.optional() }).optional(),
    // With bounces (by mail) configured: mail through this tenant's own upstream leaves with the relay's
    // return path too, so its bounces come back to the relay (the smarthost's always do). SPF is then
    // checked against the platform's bounce domain, not the tenant's.
    verp: z.boolean().default(false),
  })
  .prefault({});

// Where delivery events go: the platform's HTTP endpoint, each request signed the Standard Webhooks way.
export const webhook = z.strictObject({
  // https, or plain http to a loopback address.
  url: z.string().regex(/^https?:\/\/[^\s/?#]+(\/[^\s#]*)?$/, 'must be an http(s) URL, like https://platform.internal/relay/events'),
  // The signing key: whsec_ and the base64 of 24 to 64 random bytes (openssl rand -base64 32); use
  // ${ENV} or ${file:/path}.
  secret: z.string().regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'must be whsec_ followed by base64 (make one with: echo whsec_$(openssl rand -base64 32))'),
  // PEM file of a private CA for the endpoint, in place of the system store.
  ca: z.string().min(1).optional(),
  // The kinds of event sent.
  types: z
    .array(z.enum(DELIVERY_EVENT_TYPES))
    .min(1)
    .refine((t) => new Set(t).size === t.length, 'must not repeat an entry')
    .default([...DELIVERY_EVENT_TYPES]),
  // Deadline of one request.
  timeoutSeconds: z.number().positive().max(120).default(10),
  // Events in one request, at most.
  maxBatchEvents: z.int().min(1).max(1000).default(100),
  // A request's body, at most (one event may exceed it alone). A receiver answering 413 gets smaller ones.
  maxBatchKilobytes: z.int().min(1).max(16_384).default(512),
  // Events kept for a webhook that does not answer; past it the oldest are dropped (counted, logged).
  maxBacklogEvents: z.int().min(10).max(10_000_000).default(100_000),
});

const suppressionFields = {
  enabled: z.boolean(),
  // How long an address stays suppressed.
  expiryDays: z.number().positive().max(3650),
  // report: accepted, skipped at delivery, a suppressed event; refuse: 550 5.1.1 at RCPT.
  action: z.enum(SUPPRESSION_ACTIONS),
};
/** Suppression settings globally, with their defaults. */
export const suppressionSettings = z
  .strictObject({ enabled: suppressionFields.enabled.default(true), expiryDays: suppressionFields.expiryDays.default(30), action: suppressionFields.action.default('report') })
  .prefault({});
/** A tenant's: each key optional, the global one applies. */
const tenantSuppression = z.strictObject({ enabled: suppressionFields.enabled.optional(), expiryDays: suppressionFields.expiryDays.optional(), action: suppressionFields.action.optional() }).optional();

export const tenantSchema = z.strictObject({
  id: tenantId,
  match: z
    .strictObject({
      authUsers: z.array(z.string().min(1)).default([]),
      addresses: z.array(address).default([]),
      domains: z.array(domainPattern).default([]),
    })
    .prefault({}),
  upstream: upstreamSchema.optional(),
  identity: z
    .strictObject({
      from: address.optional(),
      displayName: z.string().min(1).max(256).optional(),
      replyTo: address.optional(),
      rewriteEnvelopeSender: z.boolean().default(false),
    })
    .prefault({}),
  dkim: z
    .strictObject({
      ...dkimKey,
      disablePlatformDkim: z.boolean().default(false),
    })
    .prefault({}),
  delivery: tenantDelivery,
  limits: z
    .strictObject({
      messagesPerMinute: z.number().positive().optional(),
      messagesPerDay: z.int().positive().optional(),
      // In a sliding 24 hours, as Microsoft 365 counts them.
      recipientsPerDay: z.int().positive().optional(),
    })
    .optional(),
  // This tenant's own webhook, for its events only (config files only).
  events: z.strictObject({ webhook: webhook.optional() }).optional(),
  // This tenant's suppression settings, key by key in place of the global ones.
  suppression: tenantSuppression,
});
