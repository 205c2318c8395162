// A tenant's mail never leaves under another identity by accident: when its record is gone (the platform
// answers 404, or it was removed from the files) its queued mail is held, says why, and is bounced at the
// end of its lifetime, never sent through the smarthost. And a mailbox budget is shared only by those who
// hold the mailbox's credential: a tenant that names another's host and user cannot push its slots.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { loadConfigFile } from '../config/load.js';
import { silentLogger } from '../relay/log.js';
import { startRelay } from '../relay/runtime/start-relay.js';
import { type Platform, startPlatform } from './helpers/platform.js';
import { queuedId, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

async function upstreamFor(t: Test, options: Parameters<typeof startUpstream>[0] = {}): Promise<Upstream> {
  const u = await startUpstream(options);
  t.teardown(() => u.close());
  return u;
}


t.test("queued mail of a platform tenant whose record is gone is held with the reason, then bounced: never sent through the smarthost", async (t) => {
  const smarthost = await upstreamFor(t);
  const tenantServer = await upstreamFor(t, { data: [451, '4.3.0 try later'] });
  let gone = false;
  const platform: Platform = await startPlatform((_by, value) =>
    gone || !(value === 'acme' || value.endsWith('@acme.test')) ? { status: 404 } : { body: { id: 'acme', match: { domains: ['acme.test'] }, upstream: { host: '127.0.0.1', port: tenantServer.port, tls: 'none' } } },
  );
  t.teardown(() => platform.close());
  const relay: TestRelay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} }, retry: { minSeconds: 60, maxSeconds: 60, jitter: 0, maxLifetimeHours: 1 } }
smarthost: { host: 127.0.0.1, port: ${smarthost.port}, tls: none }
tenantSource: { url: "${platform.url}", token: t, cacheSeconds: 0.05, staleSeconds: 0, notFoundCacheSeconds: 0.05, upstreamHosts: { allow: [127.0.0.1/32], ports: [] } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  const id = queuedId((await sendThrough(relay.port, { from: 'app@acme.test', to: 'jane@example.com' })).response);
  const start = Date.now();
  // The first attempt starts with the 250, so runDue may find it under way and not wait for it; and on a
  // busy machine it may find the record past its 50 ms and wait for the platform a second (on the
  // scheduler's clock, so this one runs on the real one). Wait, bounded, for its end: flipping `gone`
  // before the attempt had the tenant's record made it a hold.
  const firstAttemptEnded = () => relay.logs.some((l) => l.event === 'deferred' && l.id === id && l.upstream !== '(held)');
  const firstAttemptDone = await until(async () => {
    await relay.relay.scheduler.runDue();
    return firstAttemptEnded();
  });
  t.ok(firstAttemptDone, 'the first attempt ended');
  t.equal(tenantServer.connections.opened, 1, "the tenant's own upstream was tried (it deferred)");

  gone = true;
  await new Promise((r) => setTimeout(r, 100)); // past cacheSeconds: the next look asks the platform again
  // A look a retry apart each time (61 s on the scheduler's clock): one more try of the tenant's own
  // upstream (see below) puts the next attempt a retry later.
  for (let i = 0; i < 20 && relay.logs.every((l) => l.event !== 'held'); i++) {
    await relay.relay.scheduler.runDue(start + 61_000 * (i + 1));
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(smarthost.received.length, 0, 'nothing went through the smarthost');
  t.match(await relay.relay.spool.read(id), { recipients: [{ status: 'pending', reply: /^451 4\.3\.0 Tenant acme is not known now \(its record is gone\); the message is held until it is back$/ }] }, 'queue show says why');
  t.match(relay.logs.find((l) => l.event === 'held'), { id, tenant: 'acme', upstream: '(held)' });
  const traced = relay.relay.trace?.find({ queueId: id }) ?? [];
  const events = traced[0]?.events.map((e) => [e.type, e.reply]) ?? [];
  t.match(events.at(-1), ['deferred', /^451 4\.3\.0 Tenant acme is not known now/], 'the trace says so');
  // Before it: the acceptance, and the tenant's own upstream deferring. On a busy machine more than once:
  // a look may go by the platform's answer to the look before, given just before the record went.
  const before = events.slice(1, -1);
  t.match(events[0], ['accepted', /^250 /]);
  t.ok(before.length >= 1 && before.every(([type, reply]) => type === 'deferred' && /^451 4\.4\.0 /.test(String(reply))), "then only the tenant's own upstream, deferring");

  // The platform is asked again at each look (its answer may take a moment under load): look until the
  // DSN is out, a bounded number of times.
  for (let i = 0; i < 50 && smarthost.received.length === 0; i++) {
    await relay.relay.scheduler.runDue(start + 2 * 3_600_000 + i * 1000);
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(smarthost.received.length, 1, 'only the bounce went out');
  t.match(smarthost.received[0], { mailFrom: '', rcptTo: ['app@acme.test'] }, 'a DSN to the sender');
  t.match(smarthost.received[0]?.raw.toString(), /Tenant acme is not known now/);
  t.equal(tenantServer.received.length, 0);
});

t.test('queued mail of a tenant removed from the config files is held too', async (t) => {
  const smarthost = await upstreamFor(t);
  const tenantServer = await upstreamFor(t, { data: [451, '4.3.0 try later'] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-removed-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'relay.yaml');
  const base = `listen: [{ host: 127.0.0.1, port: 0 }]\nops: { enabled: false }\ndelivery: { mode: queue, spool: { path: ${dir}/spool }, retry: { minSeconds: 60, maxSeconds: 60, jitter: 0 } }\nsmarthost: { host: 127.0.0.1, port: ${smarthost.port}, tls: none }\n`;
  fs.writeFileSync(file, `${base}tenants:\n  - { id: acme, match: { domains: [acme.test] }, upstream: { host: 127.0.0.1, port: ${tenantServer.port}, tls: none } }\n`);
  const relay = await startRelay(loadConfigFile(file), { logger: silentLogger, configFile: file, schedulerTimers: false });
  t.teardown(() => relay.close(0));
  const port = relay.addresses[0]?.port ?? 0;
  const id = queuedId((await sendThrough(port, { from: 'app@acme.test', to: 'jane@example.com' })).response);
  const now = Date.now();
  await relay.scheduler.runDue(now);
  fs.writeFileSync(file, base);
  t.match(relay.reload('test'), { ok: true });
  await relay.scheduler.runDue(now + 61_000);
  t.equal(smarthost.received.length + tenantServer.received.length, 0, 'neither the smarthost nor anyone else');
  t.match(await relay.spool.read(id), { attempts: 2, recipients: [{ status: 'pending', reply: /Tenant acme is not known now/ }] });
});

t.test("a tenant naming another tenant's mailbox (host and user, not its password) has a budget of its own: it cannot push the other's slots", async (t) => {
  const provider = await upstreamFor(t, { users: { 'shared@provider.test': 'the-real-password' } });
  const upstream = (password: string, perMinute: number) =>
    `{ host: 127.0.0.1, port: ${provider.port}, tls: none, allowInsecureAuth: true, username: shared@provider.test, password: ${password}, limits: { messagesPerMinute: ${perMinute} } }`;
  const relay = await startTestRelay(
    `delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: 9, tls: none }
tenants:
  - { id: evil, match: { domains: [evil.test] }, upstream: ${upstream('a-guess', 0.001)} }
  - { id: victim, match: { domains: [victim.test] }, upstream: ${upstream('the-real-password', 2)} }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'app@evil.test', to: 'x@example.com' });
  await relay.relay.scheduler.runDue(Date.now());
  await sendThrough(relay.port, { from: 'app@victim.test', to: 'a@example.com' });
  await sendThrough(relay.port, { from: 'app@victim.test', to: 'b@example.com' });
  await relay.relay.scheduler.runDue(Date.now());
  t.equal(provider.received.length, 2, "the victim's two messages went at its own rate");
  t.ok(provider.received.every((m) => m.user === 'shared@provider.test'));
});
