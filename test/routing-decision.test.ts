// decide() is pure: the same envelope, AUTH identity and config always give the same tenant, route
// and reason. These rules are what `explain` prints and what the server does.
import t from 'tap';
import { parseConfig } from '../config/load.js';
import { decide } from '../relay/routing/decide.js';
import { routeOf, upstreamForAttempt } from '../relay/routing/route.js';
import type { AuthIdentity, Decision } from '../relay/types.js';

const yaml = (extra = '') => `
inbound:
  users:
    - { username: acme-app, passwordHash: "scrypt$1$1$1$a$b" }
    - { username: platform, passwordHash: "scrypt$1$1$1$a$b" }
smarthost: { host: smarthost.test, tls: none }
${extra}
tenants:
  - id: acme
    match: { authUsers: [acme-app], domains: [acme.test, "*.acme.test"] }
    upstream: { host: smtp.acme.test, tls: implicit }
  - id: acme-eu
    match: { domains: ["*.eu.acme.test"], addresses: [ceo@acme.test] }
    upstream: { host: smtp.eu.acme.test, tls: starttls }
  - id: exact-only
    match: { domains: [exact.test] }
    upstream: { host: smtp.exact.test, tls: starttls }
  - id: no-upstream
    match: { addresses: [hello@shared.test] }
`;
const config = parseConfig(yaml(), 'relay.yaml', {});

function routed(from: string, auth?: string, c = config) {
  const d: Decision = decide({ mailFrom: from }, auth ? ({ username: auth } satisfies AuthIdentity) : undefined, c);
  if (d.kind !== 'route') throw new Error(`refused: ${d.reason}`);
  return { tenant: d.tenant?.id, upstream: d.route.upstream.name, via: d.route.via, reason: d.reason };
}

t.test('an AUTH user identifies its tenant', async (t) => {
  t.match(routed('billing@acme.test', 'acme-app'), { tenant: 'acme', upstream: 'acme', reason: /AUTH user acme-app is tenant acme/ });
});

t.test("a tenant's user with a sender no tenant claims is refused (tenantUsersSendAs: own-senders, the default)", async (t) => {
  t.match(decide({ mailFrom: 'ceo@bank.test' }, { username: 'acme-app' }, config), {
    kind: 'refused',
    reply: { code: 553, enhanced: '5.7.1' },
    reason: /no tenant claims sender ceo@bank\.test/,
  });
  const lax = parseConfig(yaml().replace('inbound:\n', 'inbound:\n  tenantUsersSendAs: any-sender\n'), 'relay.yaml', {});
  t.match(routed('ceo@bank.test', 'acme-app', lax), { tenant: 'acme' }, 'any-sender lets the AUTH tenant send as anyone');
});

t.test('an exact sender address identifies its tenant before any domain rule', async (t) => {
  t.match(routed('CEO@acme.test'), { tenant: 'acme-eu', reason: /sender address ceo@acme\.test is tenant acme-eu/ });
});

t.test('a sender domain identifies its tenant', async (t) => {
  t.match(routed('billing@ACME.test'), { tenant: 'acme', reason: /sender domain acme\.test is tenant acme/ });
});

t.test('the nearest claimed parent domain wins for a subdomain', async (t) => {
  t.match(routed('x@a.b.eu.acme.test'), { tenant: 'acme-eu', reason: /\*\.eu\.acme\.test/ });
  t.match(routed('x@us.acme.test'), { tenant: 'acme', reason: /\*\.acme\.test/ });
});

t.test('a plain domain entry does not claim its subdomains', async (t) => {
  t.match(routed('x@exact.test'), { tenant: 'exact-only' });
  t.match(routed('x@sub.exact.test'), { tenant: undefined, via: 'smarthost' });
});

t.test('no match means no tenant and the global smarthost, with the reason said', async (t) => {
  t.same(routed('x@nobody.test'), {
    tenant: undefined,
    upstream: 'smarthost',
    via: 'smarthost',
    reason: 'no tenant matched sender x@nobody.test; global smarthost',
  });
});

t.test('a tenant without an upstream goes through the global smarthost', async (t) => {
  t.match(routed('hello@shared.test'), { tenant: 'no-upstream', upstream: 'smarthost', reason: /tenant has no upstream/ });
});

t.test('the null sender is matched by AUTH only', async (t) => {
  t.match(routed(''), { tenant: undefined, reason: /the null sender/ });
  t.match(routed('', 'acme-app'), { tenant: 'acme' });
});

t.test('a platform user (in no tenant) is identified by the sender', async (t) => {
  t.match(routed('x@acme.test', 'platform'), { tenant: 'acme' });
});

t.test('AUTH and sender of different tenants: refused with 553 5.7.1 by default', async (t) => {
  const d = decide({ mailFrom: 'x@exact.test' }, { username: 'acme-app' }, config);
  t.match(d, {
    kind: 'refused',
    reply: { code: 553, enhanced: '5.7.1' },
    reason: 'AUTH user acme-app is tenant acme but sender domain exact.test is tenant exact-only; conflict rule is "refuse"',
  });
});

t.test('AUTH and sender of different tenants: the AUTH tenant with conflict: prefer-auth', async (t) => {
  const c = parseConfig(yaml('identification: { conflict: prefer-auth }'), 'relay.yaml', {});
  t.match(routed('x@exact.test', 'acme-app', c), { tenant: 'acme' });
});

t.test('the identification order is configurable', async (t) => {
  const c = parseConfig(yaml('identification: { order: [domain, address] }'), 'relay.yaml', {});
  t.match(routed('ceo@acme.test', undefined, c), { tenant: 'acme' }, 'domain before address');
  t.match(routed('x@nobody.test', 'acme-app', c), { tenant: undefined }, 'AUTH not consulted');
});

t.test('the decision is pure: same input, same output, config untouched', async (t) => {
  const before = JSON.stringify(config.tenants);
  t.same(routed('x@us.acme.test'), routed('x@us.acme.test'));
  t.equal(JSON.stringify(config.tenants), before);
});

t.test('the decision is whole: delivery mode and the smarthost fallback come with the route', async (t) => {
  const c = parseConfig(
    `${yaml()}  - { id: live, match: { domains: [live.test] }, upstream: { host: smtp.live.test, tls: implicit }, delivery: { mode: passthrough } }
  - { id: patient, match: { domains: [patient.test] }, upstream: { host: smtp.patient.test, tls: implicit }, delivery: { fallbackToSmarthostAfterMinutes: 30 } }
`,
    'relay.yaml',
    {},
  );
  t.match(decide({ mailFrom: 'a@acme.test' }, undefined, c), { mode: 'queue', route: { upstream: { name: 'acme' }, fallback: undefined } });
  t.match(decide({ mailFrom: 'a@live.test' }, undefined, c), { mode: 'passthrough' });
  t.match(decide({ mailFrom: 'a@patient.test' }, undefined, c), { mode: 'queue', route: { upstream: { name: 'patient' }, fallback: { upstream: { name: 'smarthost' }, afterMs: 30 * 60_000 } } });
  t.match(decide({ mailFrom: 'a@nobody.test' }, undefined, c), { mode: 'queue', route: { via: 'smarthost', fallback: undefined } });
});

t.test("a queued message's attempt takes the fallback only once temporary failures have lasted long enough", async (t) => {
  const c = parseConfig(`${yaml()}  - { id: patient, match: { domains: [patient.test] }, upstream: { host: smtp.patient.test, tls: implicit }, delivery: { fallbackToSmarthostAfterMinutes: 30 } }\n`, 'relay.yaml', {});
  const route = routeOf(c.directory.byId('patient'), c);
  const now = 1_000_000_000;
  const cases: [string, number | undefined, string][] = [
    ['no failure yet', undefined, 'patient'],
    ['failing for 29 minutes', now - 29 * 60_000, 'patient'],
    ['failing for 30 minutes', now - 30 * 60_000, 'smarthost'],
  ];
  for (const [name, firstTempFailureAt, upstream] of cases) t.equal(upstreamForAttempt(route, firstTempFailureAt, now).name, upstream, name);
  t.equal(upstreamForAttempt(routeOf(c.directory.byId('acme'), c), now - 1e9, now).name, 'acme', 'no fallback configured: never');
});
