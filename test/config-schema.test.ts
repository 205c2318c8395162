// config/relay.schema.json is what editors validate relay.yaml with: it must be exactly what the
// validator's own schema exports, or the editor and the relay would disagree.
import fs from 'node:fs';
import t from 'tap';
import { configJsonSchema, configJsonSchemaText } from '../config/json-schema.js';

t.test('config/relay.schema.json matches the validator (run `npm run schema` after changing config/schema.ts)', async (t) => {
  t.equal(fs.readFileSync('config/relay.schema.json', 'utf8'), configJsonSchemaText());
});

t.test('the JSON Schema refuses unknown keys and knows the required ones, like the validator', async (t) => {
  const schema = configJsonSchema() as { additionalProperties?: boolean; required?: string[]; properties: Record<string, unknown> };
  t.equal(schema.additionalProperties, false);
  t.same(schema.required, ['smarthost']);
  t.ok(schema.properties.tenants && schema.properties.inbound && schema.properties.delivery);
});

t.test('relay.example.yaml points editors at the schema', async (t) => {
  t.match(fs.readFileSync('relay.example.yaml', 'utf8'), /^# yaml-language-server: \$schema=config\/relay\.schema\.json$/m);
});
