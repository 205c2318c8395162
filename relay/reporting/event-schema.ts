// The JSON Schema of what the webhook receives: a request body is { "events": [DeliveryEvent, ...] }.
// relay/reporting/delivery-events.schema.json is this, committed for the platform's side;
// test/delivery-events.test.ts checks that file against this one and real events against both.
import { z } from 'zod';
import { DELIVERY_EVENT_TYPES, DELIVERY_MODES } from '../../config/vocabulary.js';

const iso = z.iso.datetime();

export const deliveryEventSchema = z
  .strictObject({
    id: z.string().min(1).describe('Unique and stable: the same event sent twice (delivery is at least once) has the same id'),
    type: z.enum(DELIVERY_EVENT_TYPES),
    time: iso.describe('When it happened (UTC)'),
    queueId: z.string().min(1).describe("The relay's id for the message, as in its 250 reply (\"queued as ...\") and its logs"),
    messageId: z.string().nullable().describe("The Message-ID header's value, or null"),
    tenant: z.string().nullable().describe('The tenant, or null for mail of no tenant (the global smarthost)'),
    mode: z.enum(DELIVERY_MODES),
    from: z.string().describe("The envelope sender as it went out ('' for the null sender)"),
    recipient: z.string().min(1),
    upstream: z.string().nullable().describe('The upstream of the attempt (a tenant id or "smarthost"); null for accepted'),
    attempt: z.int().min(0).describe('0 for accepted, then 1, 2, ...'),
    acceptedAt: iso,
    reply: z.string().describe("The relay's own reply for this recipient"),
    upstreamReply: z
      .strictObject({
        code: z.int().min(200).max(599),
        enhanced: z.string().regex(/^[245]\.\d{1,3}\.\d{1,3}$/).optional(),
        text: z.string(),
        queueId: z.string().optional().describe("The upstream's own id for the message, when its reply named one"),
      })
      .nullable()
      .describe('What the upstream itself answered, or null when it answered nothing (not reached, not tried)'),
    nextAttemptAt: iso.nullable().describe('deferred, queue mode: when the next attempt is due'),
    dsn: z.boolean().describe('The message is a delivery status notification the relay made'),
  })
  .describe('What became of one recipient of one message');

export const webhookBodySchema = z.strictObject({ events: z.array(deliveryEventSchema).min(1) }).describe('The body of one webhook request');

export function deliveryEventsJsonSchemaText(): string {
  const schema = {
    ...z.toJSONSchema(webhookBodySchema, { target: 'draft-2020-12' }),
    $id: 'https://tenant-relay.invalid/delivery-events.schema.json',
    title: 'tenant-relay delivery events (webhook request body)',
  };
  return `${JSON.stringify(schema, null, 2)}\n`;
}
