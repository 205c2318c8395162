// Tenants kept by the platform, looked up over HTTP: cached (TTL, stale-while-revalidate, "no such tenant"
// remembered), one request per key however many sessions ask, a deadline on every request, and when the
// platform cannot answer: the stale record if there is one, else 451 4.3.0, never another upstream.
import { Writable } from 'node:stream';
import pino from 'pino';
import t, { type Test } from 'tap';
import { parseConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { RelayMetrics } from '../relay/ops/metrics.js';
import { PlatformTenants } from '../relay/tenancy/platform-tenants.js';
import { notFound, type Platform, startPlatform } from './helpers/platform.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const tenantServer = await startUpstream();
const smarthost = await startUpstream();
t.teardown(() => Promise.all([tenantServer.close(), smarthost.close()]));

/** The platform's record for globex: its own upstream (on loopback, allowed by the test configs). */
const globex = (over: Record<string, unknown> = {}) => ({
  id: 'globex',
  match: { domains: ['globex.test'] },
  upstream: { host: '127.0.0.1', port: tenantServer.port, tls: 'none' },
  identity: { from: 'noreply@globex.test', displayName: 'Globex' },
  ...over,
});

const records = (by: string, value: string) => (by === 'sender' && value.endsWith('@globex.test')) || (by === 'id' && value === 'globex') ? { body: globex() } : notFound;

const sourceYaml = (platform: Platform, extra = '') => `
smarthost: { host: 127.0.0.1, port: ${smarthost.port}, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test] }
tenantSource:
  url: ${platform.url}
  token: platform-token-not-for-logs
  timeoutSeconds: 0.3
  cacheSeconds: 60
  staleSeconds: 600
  notFoundCacheSeconds: 30
  upstreamHosts: { allow: [127.0.0.1/32], ports: [] }
  ${extra}`;

/** cacheSeconds and notFoundCacheSeconds of 50 ms, no stale window: always ask the platform again. */
const briefCache = (yaml: string) => yaml.replace('cacheSeconds: 60', 'cacheSeconds: 0.05').replace('staleSeconds: 600', 'staleSeconds: 0').replace('notFoundCacheSeconds: 30', 'notFoundCacheSeconds: 0.05');

/** A PlatformTenants on a fake clock (it must not start at 0: lru-cache reads that as "no TTL"). */
async function cacheOn(t: Test, answer: Platform['answer'], extra = '', tune = (yaml: string) => yaml) {
  const platform = await startPlatform(answer);
  t.teardown(() => platform.close());
  const config: Config = parseConfig(tune(sourceYaml(platform, extra)), 'test.yaml', {});
  const clock = { now: 1_000_000 };
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, new Writable({ write: (c, _e, done) => (lines.push(...String(c).split('\n').filter(Boolean).map((l) => JSON.parse(l))), done()) }));
  const metrics = new RelayMetrics();
  if (!config.tenantSource) throw new Error('the test config names a tenant source');
  const cache = new PlatformTenants(config.tenantSource, { logger, metrics, config: () => config, now: () => clock.now });
  return { platform, cache, clock, lines, metrics };
}

const sender = { by: 'sender', value: 'alerts@globex.test' } as const;

t.test('a miss asks the platform once; the next lookup is a hit with no request', async (t) => {
  const { platform, cache, metrics } = await cacheOn(t, records);
  t.match(await cache.lookup(sender), { kind: 'found', tenant: { id: 'globex', upstream: { port: tenantServer.port } } });
  t.match(await cache.lookup(sender), { kind: 'found', tenant: { id: 'globex' } });
  t.same(platform.requests, ['sender=alerts@globex.test']);
  t.equal(platform.lastAuthorization, 'Bearer platform-token-not-for-logs');
  const text = await metrics.registry.metrics();
  t.match(text, /tenant_relay_tenant_lookups_total\{result="miss"\} 1/);
  t.match(text, /tenant_relay_tenant_lookups_total\{result="hit"\} 1/);
  t.match(text, /tenant_relay_tenant_source_requests_total\{result="found"\} 1/);
  t.match(text, /tenant_relay_tenant_source_seconds_count 1/);
});

t.test('a lookup by sender also answers the lookup by id that queued mail makes later', async (t) => {
  const { platform, cache } = await cacheOn(t, records);
  await cache.lookup(sender);
  t.match(cache.peekById('globex'), { id: 'globex' });
  t.equal(platform.requests.length, 1);
});

t.test("with answers kept for less than the queue's wait, a look goes by the answer to the look before it, found or not", async (t) => {
  let gone = false;
  const { cache, clock } = await cacheOn(t, (by, value) => (!gone && by === 'id' && value === 'globex' ? { body: globex() } : notFound), '', briefCache);
  // Each look the cache cannot answer asks the platform; awaiting that request keeps the steps in order.
  const look = () => cache.peekById('globex', 3000);
  const answered = () => cache.lookup({ by: 'id', value: 'globex' });
  t.equal(look(), undefined, 'nothing known yet: the look asks the platform');
  await answered();
  clock.now += 1000; // the next look, a second later: the answer is past its 50 ms
  t.match(look(), { id: 'globex' }, 'the answer the look before asked for');
  await answered();
  gone = true;
  clock.now += 1000;
  t.match(look(), { id: 'globex' }, 'the answer to the look before still (it came before the record went)');
  await answered(); // 404
  clock.now += 1000; // past notFoundCacheSeconds too
  t.equal(look(), null, 'a 404 counts the same way: the mail is held, not left waiting');
  await answered();
  clock.now += 10_000;
  t.equal(look(), undefined, 'an answer older than the allowance does not count');
  await answered();
});

t.test('an answer from before the look asked does not count: with no stale window, a platform that fails means waiting', async (t) => {
  let down = false;
  const { cache, clock } = await cacheOn(t, (by, value) => (down ? { status: 503 } : records(by, value)), '', briefCache);
  await cache.lookup(sender); // the message's own lookup, when it was accepted
  down = true;
  clock.now += 500;
  t.equal(cache.peekById('globex', 3000), undefined, 'the record is past its time, and nothing answered since the look asked');
  await cache.lookup({ by: 'id', value: 'globex' }).catch(() => undefined);
  clock.now += 1000;
  t.equal(cache.peekById('globex', 3000), undefined, 'still nothing: the platform failed');
});

t.test('sender addresses share a cache entry whatever their letter case; AUTH users are exact', async (t) => {
  const { platform, cache } = await cacheOn(t, (by, value) => (by === 'sender' ? records(by, value) : notFound));
  await cache.lookup({ by: 'sender', value: 'Alerts@Globex.test' });
  await cache.lookup({ by: 'sender', value: 'alerts@globex.test' });
  await cache.lookup({ by: 'auth', value: 'App' });
  await cache.lookup({ by: 'auth', value: 'app' });
  t.same(platform.requests, ['sender=Alerts@Globex.test', 'auth=App', 'auth=app']);
});

t.test('"no such tenant" is cached for notFoundCacheSeconds, then asked again', async (t) => {
  const { platform, cache, clock, metrics } = await cacheOn(t, () => notFound);
  const nobody = { by: 'sender', value: 'someone@nowhere.test' } as const;
  t.same(await cache.lookup(nobody), { kind: 'none' });
  t.same(await cache.lookup(nobody), { kind: 'none' });
  t.equal(platform.requests.length, 1);
  clock.now += 31_000;
  t.same(await cache.lookup(nobody), { kind: 'none' });
  t.equal(platform.requests.length, 2);
  t.match(await metrics.registry.metrics(), /tenant_relay_tenant_source_requests_total\{result="not-found"\} 2/);
});

t.test('past its TTL a record is served stale at once while one background request refreshes it', async (t) => {
  let name = 'Globex';
  const { platform, cache, clock, metrics } = await cacheOn(t, (by, value) => (by === 'sender' ? { body: globex({ identity: { from: 'noreply@globex.test', displayName: name } }) } : records(by, value)));
  await cache.lookup(sender);
  name = 'Globex Renamed';
  clock.now += 61_000;
  const [a, b] = await Promise.all([cache.lookup(sender), cache.lookup(sender)]);
  t.match(a, { kind: 'found', tenant: { identity: { displayName: 'Globex' } } }, 'the old record, without waiting');
  t.match(b, { kind: 'found', tenant: { identity: { displayName: 'Globex' } } });
  // Lookups while the refresh is out are served the old record and ask nothing more.
  const renamed = async () => {
    const found = await cache.lookup(sender);
    return found.kind === 'found' && found.tenant.identity?.displayName === 'Globex Renamed';
  };
  t.ok(await until(renamed, 5000), 'the refreshed record is served once it came');
  t.equal(platform.requests.length, 2, 'one refresh for the two stale lookups');
  t.match(await metrics.registry.metrics(), /tenant_relay_tenant_lookups_total\{result="stale"\} [1-9]\d*\n/, 'the stale lookups are counted');
});

t.test('platform down with a stale record: the record is served while inside staleSeconds, then lookups fail', async (t) => {
  let down = false;
  const { platform, cache, clock } = await cacheOn(t, (by, value) => (down ? { status: 503 } : records(by, value)));
  await cache.lookup(sender);
  down = true;
  clock.now += 61_000;
  t.match(await cache.lookup(sender), { kind: 'found', tenant: { id: 'globex' } });
  await new Promise((r) => setTimeout(r, 50));
  t.match(await cache.lookup(sender), { kind: 'found', tenant: { id: 'globex' } }, 'still served after the refresh failed');
  clock.now += 600_000;
  t.match(await cache.lookup(sender), { kind: 'unavailable', reason: /HTTP 503|past staleSeconds/ });
  t.ok(platform.requests.length >= 3);
});

t.test('platform down with nothing cached: unavailable, and not remembered (the next lookup asks again)', async (t) => {
  const { platform, cache, lines } = await cacheOn(t, () => ({ status: 500 }));
  t.match(await cache.lookup(sender), { kind: 'unavailable', reason: /HTTP 500/ });
  t.match(await cache.lookup(sender), { kind: 'unavailable' });
  t.equal(platform.requests.length, 2);
  t.match(lines.find((l) => l.event === 'tenant-lookup'), { level: 40, reason: 'HTTP 500' });
});

t.test('a platform slower than timeoutSeconds is abandoned at the deadline', async (t) => {
  const { cache, metrics } = await cacheOn(t, () => ({ hang: true }));
  const started = Date.now();
  t.match(await cache.lookup(sender), { kind: 'unavailable', reason: /no answer within 300 ms/ });
  t.ok(Date.now() - started < 5000, 'bounded by the deadline, not by the platform');
  t.match(await metrics.registry.metrics(), /tenant_relay_tenant_source_requests_total\{result="timeout"\} 1/);
});

t.test('a flood of concurrent lookups for one tenant makes one request', async (t) => {
  const { platform, cache } = await cacheOn(t, (by, value) => ({ ...records(by, value), delayMs: 100 }));
  const answers = await Promise.all(Array.from({ length: 200 }, () => cache.lookup(sender)));
  t.ok(answers.every((a) => a.kind === 'found'));
  t.same(platform.requests, ['sender=alerts@globex.test']);
});

t.test('a malformed answer is refused with its reason logged (keys and rules, never values)', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['not JSON', '{oops', /answer is not JSON/],
    ['a bad port', globex({ upstream: { host: '127.0.0.1', port: 70000, tls: 'none', username: 'u', password: 'pw-in-a-bad-record' } }), /upstream\.port: must be between 1 and 65535/],
    ['an unknown key', globex({ colour: 'blue' }), /unknown key colour/],
    ['a record that does not claim the sender', globex({ match: { domains: ['elsewhere.test'] } }), /match: does not claim the sender/],
    ['a maildir upstream', globex({ upstream: { kind: 'maildir', path: '/etc' } }), /upstream\.kind: maildir is only for upstreams in the config files/],
    ['a local CA path', globex({ upstream: { host: '127.0.0.1', tls: 'starttls', ca: '/etc/passwd' } }), /upstream\.ca: is a local file path/],
    ["the id of a YAML tenant", globex({ id: "acme" }), /id: ..?"acme..?" is a tenant of the config files/],
    ['a password over cleartext', globex({ upstream: { host: '127.0.0.1', tls: 'none', username: 'u', password: 'pw-in-a-bad-record' } }), /upstream\.password: credentials would travel in cleartext/],
  ];
  for (const [what, body, reason] of cases) {
    const { cache, lines, metrics } = await cacheOn(t, () => ({ body }));
    const answer = await cache.lookup(sender);
    t.match(answer, { kind: 'unavailable' }, what);
    const logged = JSON.stringify(lines);
    t.match(logged, reason, `${what}: reason logged`);
    t.notMatch(logged, /pw-in-a-bad-record|platform-token-not-for-logs/, `${what}: no secret in the log`);
    if (what !== 'not JSON') t.match(await metrics.registry.metrics(), /tenant_relay_tenant_source_requests_total\{result="malformed"\} 1/);
  }
});

t.test('through the relay', async (t) => {
  const platform = await startPlatform(records);
  t.teardown(() => platform.close());
  const relay = await startTestRelay(sourceYaml(platform));
  t.teardown(() => relay.close());

  await t.test("a platform tenant's mail leaves through its own upstream with its identity", async (t) => {
    const before = tenantServer.received.length;
    t.match((await sendThrough(relay.port, { from: 'alerts@globex.test', to: 'x@example.com' })).response, /^250 /);
    const got = tenantServer.received.at(-1);
    t.equal(tenantServer.received.length, before + 1);
    t.match(got?.raw.toString(), /^From: "?Globex"? <noreply@globex\.test>/m);
  });

  await t.test('a YAML tenant takes precedence: the platform is not asked about its domain', async (t) => {
    const asked = platform.requests.length;
    t.match((await sendThrough(relay.port, { from: 'a@acme.test', to: 'x@example.com' })).response, /^250 /);
    t.equal(platform.requests.length, asked);
  });

  await t.test('a sender no tenant claims (404) goes through the smarthost', async (t) => {
    const before = smarthost.received.length;
    t.match((await sendThrough(relay.port, { from: 'a@unknown.test', to: 'x@example.com' })).response, /^250 /);
    t.equal(smarthost.received.length, before + 1);
  });

  await t.test('platform down and nothing cached: 451 4.3.0, and nothing goes out through the smarthost', async (t) => {
    platform.answer = () => ({ status: 502 });
    const before = smarthost.received.length + tenantServer.received.length;
    t.match(await replyOf(sendThrough(relay.port, { from: 'a@initech.test', to: 'x@example.com' })), /^451 4\.3\.0 Tenant settings are unavailable/);
    t.equal(smarthost.received.length + tenantServer.received.length, before);
    t.match(relay.logs.find((l) => l.event === 'refused' && /tenant source could not answer/.test(String(l.reason))), { from: 'a@initech.test' });
  });

  await t.test('platform down: a tenant with a cached record still gets its mail through', async (t) => {
    t.match(await replyOf(sendThrough(relay.port, { from: 'other@globex.test', to: 'x@example.com' })), /^451 4\.3\.0/, 'a new address is a new key');
    t.match((await sendThrough(relay.port, { from: 'alerts@globex.test', to: 'x@example.com' })).response, /^250 /);
    platform.answer = records;
  });

  await t.test('the token and the upstream password never reach the log', async (t) => {
    t.notMatch(JSON.stringify(relay.logs), /platform-token-not-for-logs/);
  });
});

t.test("safe hosts by default: a platform tenant's upstream on loopback is refused unless allowed", async (t) => {
  const platform = await startPlatform(records);
  t.teardown(() => platform.close());
  const relay = await startTestRelay(sourceYaml(platform).replace('upstreamHosts: { allow: [127.0.0.1/32], ports: [] }', 'upstreamHosts: { ports: [] }'));
  t.teardown(() => relay.close());
  const before = tenantServer.received.length;
  t.match(await replyOf(sendThrough(relay.port, { from: 'alerts@globex.test', to: 'x@example.com' })), /^451 4\.4\.0 Upstream globex not used: 127\.0\.0\.1 resolves to 127\.0\.0\.1/);
  t.equal(tenantServer.received.length, before);
  // And by default only mail's ports: a record naming another port is refused as a whole.
  const mailPorts = await startTestRelay(sourceYaml(platform).replace('upstreamHosts: { allow: [127.0.0.1/32], ports: [] }', 'upstreamHosts: { allow: [127.0.0.1/32] }'));
  t.teardown(() => mailPorts.close());
  t.match(await replyOf(sendThrough(mailPorts.port, { from: 'alerts@globex.test', to: 'x@example.com' })), /^451 4\.3\.0 /);
  t.match(mailPorts.logs.find((l) => l.event === 'tenant-lookup' && l.problems), { problems: [/^upstream\.port: \d+ is not a port the upstream host policy allows \(25, 465, 587, 2525\)$/] });
});

t.test("queue mode: deferred mail of a platform tenant is retried when cacheSeconds is shorter than the queue's wait", async (t) => {
  let tries = 0;
  const upstream = await startUpstream({ data: () => (tries++ === 0 ? [451, '4.3.0 try later'] : undefined) });
  t.teardown(() => upstream.close());
  const own = { body: globex({ upstream: { host: '127.0.0.1', port: upstream.port, tls: 'none' } }) };
  const platform = await startPlatform((by, value) => (records(by, value) === notFound ? notFound : own));
  t.teardown(() => platform.close());
  const viaSmarthost = smarthost.received.length;
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL}, fsync: false }, retry: { minSeconds: 60, maxSeconds: 60, jitter: 0 } }\n${briefCache(sourceYaml(platform, ''))}`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  const { scheduler } = relay.relay;
  t.match((await sendThrough(relay.port, { from: 'alerts@globex.test', to: 'x@example.com' })).response, /^250 2\.0\.0 Ok: queued/);
  t.ok(await until(async () => (await scheduler.runDue(), relay.logs.some((l) => l.event === 'deferred'))), 'the first attempt was deferred');
  // The scheduler's looks, a second apart on its clock and more than the 50 ms cache apart in time: each
  // finds the answer the one before asked for. Before, each found it past its time and asked again.
  const from = Date.now() + 61_000;
  for (let i = 0; i < 10 && upstream.received.length === 0; i++) {
    await scheduler.runDue(from + i * 1000);
    await new Promise((r) => setTimeout(r, 120));
  }
  t.equal(upstream.received.length, 1, "the retry went to the tenant's own upstream");
  t.equal(smarthost.received.length, viaSmarthost, 'nothing through the smarthost');
});

t.test('queue mode: queued mail of a platform tenant waits for its record rather than take another route', async (t) => {
  let down = false;
  const platform = await startPlatform((by, value) => (down ? { status: 503 } : records(by, value)));
  t.teardown(() => platform.close());
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL}, fsync: false }, retry: { minSeconds: 1, maxSeconds: 2 } }\n${sourceYaml(platform, '').replace('cacheSeconds: 60', 'cacheSeconds: 0.05').replace('staleSeconds: 600', 'staleSeconds: 0')}`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  const before = { tenant: tenantServer.received.length, smarthost: smarthost.received.length };
  t.match((await sendThrough(relay.port, { from: 'alerts@globex.test', to: 'x@example.com' })).response, /^250 2\.0\.0 Ok: queued/);
  down = true;
  await new Promise((r) => setTimeout(r, 100)); // the cached record is now past cacheSeconds + staleSeconds
  const { scheduler } = relay.relay;
  await scheduler.runDue(Date.now());
  await new Promise((r) => setTimeout(r, 100));
  await scheduler.runDue(Date.now() + 1500);
  t.equal(smarthost.received.length, before.smarthost, 'not sent through the smarthost');
  t.equal(tenantServer.received.length, before.tenant, 'not sent at all while the platform is down');
  t.equal(scheduler.size, 1);
  down = false;
  await scheduler.runDue(Date.now() + 3000); // starts the lookup
  for (let i = 0; i < 50 && scheduler.size > 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
    await scheduler.runDue(Date.now() + 5000 + i * 1500);
  }
  t.equal(scheduler.size, 0);
  t.equal(tenantServer.received.length, before.tenant + 1, "delivered through the tenant's upstream once the platform answered");
});
