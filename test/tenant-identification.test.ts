// Which tenant sent a message (tenancy/identify.ts), as a table: the identifiers in `identification.order`,
// the conflict rule when AUTH and sender disagree, and the null sender.
import t from 'tap';
import { parseConfig } from '../config/load.js';
import { identifyTenant } from '../relay/tenancy/identify.js';

const config = (identification = '') =>
  parseConfig(
    `${identification}
inbound:
  users:
    - { username: acme-app, passwordHash: "scrypt$1$1$1$a$b" }
    - { username: platform, passwordHash: "scrypt$1$1$1$a$b" }
smarthost: { host: smarthost.test, tls: none }
tenants:
  - { id: acme, match: { authUsers: [acme-app], domains: [acme.test] } }
  - { id: globex, match: { addresses: [alerts@globex.test], domains: ["*.globex.test"] } }
`,
    'relay.yaml',
    {},
  );

const describe = (r: ReturnType<typeof identifyTenant>) =>
  r.kind === 'tenant' ? `${r.match.tenant.id} by ${r.match.by}` : r.kind === 'conflict' ? `conflict ${r.auth.tenant.id}/${r.sender.tenant.id}` : 'none';

const cases: [string, string, string, string | undefined, string][] = [
  // name, identification settings, sender, AUTH user, result
  ['AUTH user alone', '', '', 'acme-app', 'acme by auth'],
  ['AUTH user and a sender of the same tenant', '', 'x@acme.test', 'acme-app', 'acme by auth'],
  ['exact address', '', 'Alerts@Globex.test', undefined, 'globex by address'],
  ['parent domain', '', 'x@eu.globex.test', undefined, 'globex by domain'],
  ['nobody', '', 'x@other.test', undefined, 'none'],
  ['the null sender matches by AUTH only', '', '', undefined, 'none'],
  ['AUTH and sender disagree: refused by default', '', 'alerts@globex.test', 'acme-app', 'conflict acme/globex'],
  ['AUTH and sender disagree, prefer-auth', 'identification: { conflict: prefer-auth }', 'alerts@globex.test', 'acme-app', 'acme by auth'],
  ['a platform user (no tenant) sends for the sender’s tenant', '', 'x@acme.test', 'platform', 'acme by domain'],
  ['order: domain before auth', 'identification: { order: [domain, auth] }', 'x@acme.test', 'acme-app', 'acme by domain'],
  ['order without auth ignores the AUTH user', 'identification: { order: [address, domain] }', 'x@other.test', 'acme-app', 'none'],
];

for (const [name, identification, sender, auth, expected] of cases) {
  t.test(name, async (t) => {
    t.equal(describe(identifyTenant(sender, auth ? { username: auth } : undefined, config(identification))), expected);
  });
}
