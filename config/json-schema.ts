// The JSON Schema of relay.yaml, made from the same zod schema the loader validates with, so editors
// (yaml-language-server) check the file as it is typed. config/relay.schema.json is this, committed;
// test/config-schema.test.ts fails when the two drift (`npm run schema` rewrites it).
import { z } from 'zod';
import { configSchema } from './schema.js';

export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }),
    $id: 'https://tenant-relay.invalid/relay.schema.json',
    title: 'tenant-relay configuration (relay.yaml)',
  };
}

export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
