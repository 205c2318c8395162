// Suppression per tenant: an address whose mailbox refused mail for good (user unknown, mailbox disabled;
// a declared table, not every 5xx) is not sent to again by that tenant until the entry expires; other
// tenants are unaffected. A suppressed recipient is skipped and reported (default) or refused at RCPT.
// Shared through Redis by a fleet; an entry nobody signed is ignored.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { findInTraces } from '../relay/reporting/trace-read.js';
import { mailboxGone } from '../relay/suppression/mailbox-gone.js';
import { LocalSuppressions } from '../relay/suppression/local-store.js';
import { childEnv, runCli } from './helpers/cli.js';
import { queuedId, replyOf, sendThrough, startFileRelay, startTestRelay, type TestRelay } from './helpers/relay.js';
import { needRedis, startRedis, type TestRedis } from './helpers/redis.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

t.test('which permanent failures suppress the address: the mailbox will not take mail, nothing else', async (t) => {
  const cases: [string, { code: number; enhanced?: string; text: string } | undefined, boolean][] = [
    ['Postfix user unknown', { code: 550, enhanced: '5.1.1', text: '<x@example.com>: Recipient address rejected: User unknown in virtual mailbox table' }, true],
    ['Exchange recipient not found', { code: 550, enhanced: '5.1.1', text: 'RESOLVER.ADR.RecipNotFound; not found' }, true],
    ['Gmail account disabled', { code: 550, enhanced: '5.2.1', text: 'The email account that you tried to reach is disabled.' }, true],
    ['null MX', { code: 556, enhanced: '5.1.10', text: 'Recipient address has null MX' }, true],
    ['no enhanced code, "No such user"', { code: 550, text: 'No such user here' }, true],
    ['policy refusal', { code: 550, enhanced: '5.7.1', text: 'Message rejected as spam' }, false],
    ['mailbox full', { code: 552, enhanced: '5.2.2', text: 'Mailbox full' }, false],
    ['message too big', { code: 552, enhanced: '5.3.4', text: 'Message too big' }, false],
    ['a temporary user unknown', { code: 450, enhanced: '4.1.1', text: 'User unknown (try later)' }, false],
    ['no reply at all', undefined, false],
  ];
  for (const [name, said, gone] of cases) t.equal(mailboxGone(said), gone, name);
});

t.test('an entry lasts until it expires, per tenant', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-suppress-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = new LocalSuppressions(path.join(dir, 'suppressions.db'));
  t.teardown(() => store.close());
  await store.add({ tenant: 'acme', address: 'Gone@Example.com', reason: '550 5.1.1 User unknown', source: 'bounce', at: 0, expiresAt: 1000 });
  t.same([...(await store.check('acme', ['GONE@example.com', 'ok@example.com'], 500)).keys()], ['gone@example.com'], 'any case');
  t.same([...(await store.check('beta', ['gone@example.com'], 500)).keys()], [], "another tenant's list is its own");
  t.same([...(await store.check('acme', ['gone@example.com'], 1000)).keys()], [], 'expired');
  t.equal((await store.list({ tenant: 'acme', limit: 10, now: 500 })).length, 1);
  t.ok(await store.remove('acme', 'GONE@example.com'));
  t.equal(fs.statSync(path.join(dir, 'suppressions.db')).mode & 0o777, 0o600, 'private');
});

t.test('lookups are remembered, yet what another process adds or removes counts at the next lookup', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-suppress-other-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'suppressions.db');
  const store = new LocalSuppressions(file);
  t.teardown(() => store.close());
  const module = pathToFileURL(path.resolve('dist/relay/suppression/local-store.js')).href;
  // Another process on the file (a worker, `tenant-relay suppression add`): its own connection, its own commit.
  const other = async (change: string) => {
    const script = `const { LocalSuppressions } = await import(${JSON.stringify(module)}); const s = new LocalSuppressions(${JSON.stringify(file)}); ${change}; s.close();`;
    const child = spawn(process.execPath, ['--input-type=module', '--no-warnings', '-e', script], { stdio: 'ignore', env: childEnv() });
    t.equal(await new Promise((resolve) => child.on('close', resolve)), 0);
  };
  const suppressed = async () => [...(await store.check('acme', ['pat@example.com'], 500)).keys()];
  t.same(await suppressed(), [], 'not suppressed (and remembered so)');
  t.same(await suppressed(), [], 'asked again');
  await other(`await s.add({ tenant: 'acme', address: 'pat@example.com', reason: 'asked to stop', source: 'manual', at: 0, expiresAt: 9e12 })`);
  t.same(await suppressed(), ['pat@example.com'], 'added by another process: seen at once');
  t.same(await suppressed(), ['pat@example.com']);
  await other(`await s.remove('acme', 'pat@example.com')`);
  t.same(await suppressed(), [], 'removed by another process: seen at once');
  await store.add({ tenant: 'acme', address: 'pat@example.com', reason: 'bounced', source: 'bounce', at: 0, expiresAt: 1000 });
  t.same(await suppressed(), ['pat@example.com'], 'its own addition too');
  t.same([...(await store.check('acme', ['pat@example.com'], 1000)).keys()], [], 'a remembered entry past its expiry is not suppressed');
});

t.test('workers opening a new suppressions file at the same moment all open it (each waits for the lock, none fails)', async (t) => {
  // Each worker process opens the one file as it starts; a failed open ends the worker. Four processes,
  // started together and released at one instant, per round.
  const store = path.resolve('dist/relay/suppression/local-store.js');
  const rounds = 6;
  let failed = 0;
  const errors = new Set<string>();
  for (let round = 0; round < rounds; round++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-suppress-open-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const at = Date.now() + 1000;
    const script = `
      const { LocalSuppressions } = await import(${JSON.stringify(pathToFileURL(store).href)});
      while (Date.now() < ${at}) {}
      const s = new LocalSuppressions(${JSON.stringify(path.join(dir, 'suppressions.db'))});
      await s.add({ tenant: 'acme', address: 'x' + process.pid + '@example.com', reason: 'r', source: 'manual', at: 0, expiresAt: 9e12 });
      s.close();`;
    const runs = await Promise.all(
      Array.from({ length: 4 }, () => {
        const child = spawn(process.execPath, ['--input-type=module', '--no-warnings', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d));
        return new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
      }),
    );
    for (const r of runs.filter((r) => r.code !== 0)) {
      failed++;
      errors.add(/Error: .*/.exec(r.stderr)?.[0] ?? r.stderr.slice(0, 200));
    }
  }
  t.equal(failed, 0, `opens that failed of ${rounds * 4}: ${[...errors].join('; ')}`);
});

interface Setup {
  readonly upstream: Upstream;
  readonly relays: TestRelay[];
  /** Every RCPT TO the smarthost was given (a refused one never reaches DATA). */
  readonly rcpts: string[];
}

/** A smarthost that refuses gone@ for good; `rcpts`: every RCPT TO it was given. */
async function goneUpstream(t: Test): Promise<{ upstream: Upstream; rcpts: string[] }> {
  const upstream = await startUpstream({ rcpt: (a) => (a.startsWith('gone@') ? [550, '5.1.1 <gone@example.com>: Recipient address rejected: User unknown'] : undefined) });
  t.teardown(() => upstream.close());
  return { upstream, rcpts: upstream.rcpts };
}

/** Relays (queue mode, scheduler by hand) whose smarthost refuses gone@ for good; acme's settings as given. */
async function setup(t: Test, o: { relays?: number; redis?: TestRedis; acme?: string } = {}): Promise<Setup> {
  const { upstream, rcpts } = await goneUpstream(t);
  const relays: TestRelay[] = [];
  for (let i = 0; i < (o.relays ?? 1); i++) {
    const relay = await startTestRelay(
      `
delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
${o.redis ? `limits: { store: { redis: { url: "${o.redis.url}", signingKey: "shared-signing-key-of-the-test-fleet-0123" } } }` : ''}
tenants:
  - { id: acme, match: { domains: [acme.test] }${o.acme ? `, suppression: { ${o.acme} }` : ''} }
  - { id: beta, match: { domains: [beta.test] } }
`,
      {},
      { manualScheduler: true },
    );
    t.teardown(() => relay.close());
    relays.push(relay);
  }
  return { upstream, relays, rcpts };
}

t.test("after a user-unknown bounce, the tenant's next message skips that address and reports it; other tenants still send", async (t) => {
  const { upstream, relays, rcpts } = await setup(t);
  const [relay] = relays as [TestRelay];
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'gone@example.com' });
  await relay.relay.scheduler.runDue();
  const id = queuedId((await sendThrough(relay.port, { from: 'app@acme.test', to: ['gone@example.com', 'ok@example.com'] })).response);
  await sendThrough(relay.port, { from: 'app@beta.test', to: 'gone@example.com' });
  await relay.relay.scheduler.runDue();
  await relay.relay.scheduler.runDue();
  t.equal(rcpts.filter((r) => r === 'gone@example.com').length, 2, "two tries in all: acme's bounce, and beta's (its own list is empty); acme's second message did not try");
  t.ok(rcpts.includes('ok@example.com'), "acme's other recipient went");
  t.match(relay.logs.find((l) => l.event === 'delivered' && l.id === id)?.outcomes, [{ rcpt: 'ok@example.com' }, { rcpt: 'gone@example.com', reply: /^550 5\.1\.1 Recipient address is suppressed for this sender \(bounce: 550 5\.1\.1 .*User unknown\)/ }]);
  t.equal(upstream.received.filter((m) => m.mailFrom === '' && m.rcptTo.includes('app@acme.test')).length, 1, "a DSN for acme's bounce only: none for the skipped recipient");
  const typeOf = () => findInTraces([path.join(relay.spoolDir, 'trace.db')], { queueId: id })[0]?.events.find((e) => e.recipient === 'gone@example.com' && e.type !== 'accepted')?.type;
  t.ok(await until(() => typeOf() === 'suppressed', 3000), 'a suppressed event (in the trace, and to webhooks)');
});

t.test('with action: refuse, the suppressed address is refused at RCPT (550 5.1.1); the rest of the message goes', async (t) => {
  const { relays } = await setup(t, { acme: 'action: refuse' });
  const [relay] = relays as [TestRelay];
  await sendThrough(relay.port, { from: 'app@acme.test', to: 'gone@example.com' });
  await relay.relay.scheduler.runDue();
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: 'gone@example.com' })), /^550 5\.1\.1 Recipient address is suppressed for this sender/);
  t.equal(await replyOf(sendThrough(relay.port, { from: 'app@beta.test', to: 'gone@example.com' })), 'resolved', 'another tenant is not refused');
});

t.test('a fleet of three relays on one Redis: a bounce on one, and the others do not try the address again; a forged entry is ignored', needRedis, async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const { relays, rcpts } = await setup(t, { relays: 3, redis });
  const [a, b, c] = relays as [TestRelay, TestRelay, TestRelay];
  // Someone who can write to Redis but has no signing key: a suppression of acme's ok@ address.
  await redis.client.set('tenant-relay:suppress:acme:ok@example.com', `${'A'.repeat(43)}.${JSON.stringify({ tenant: 'acme', address: 'ok@example.com', reason: 'forged', source: 'hand', at: 0, expiresAt: Date.now() + 86_400_000 })}`);
  await sendThrough(a.port, { from: 'app@acme.test', to: 'gone@example.com' });
  await a.relay.scheduler.runDue();
  t.ok(await until(async () => (await redis.client.keys('tenant-relay:suppress:acme:gone@example.com')).length === 1, 2000), 'suppressed in Redis');
  t.ok((await redis.client.pttl('tenant-relay:suppress:acme:gone@example.com')) > 29 * 86_400_000, 'for 30 days (the default), then Redis drops it');
  for (const r of [b, c]) {
    await sendThrough(r.port, { from: 'app@acme.test', to: ['gone@example.com', 'ok@example.com'] });
    await r.relay.scheduler.runDue();
  }
  t.equal(rcpts.filter((r) => r === 'gone@example.com').length, 1, 'one try in the fleet: the bounce');
  t.equal(rcpts.filter((r) => r === 'ok@example.com').length, 2, 'the forged entry held nothing');
});

t.test("each relay's index of the fleet's list: a recipient on no list costs no question to Redis; one added by another relay while this one's subscription was down is still not tried", needRedis, async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const { relays, rcpts } = await setup(t, { relays: 2, redis });
  const [a, b] = relays as [TestRelay, TestRelay];
  const filled = (r: TestRelay) => r.logs.filter((l) => l.event === 'suppression-index-filled').length;
  t.ok(await until(() => filled(a) > 0 && filled(b) > 0, 3000), 'both indexes filled');
  const mgets = async () => Number(/cmdstat_mget:calls=(\d+)/.exec(await redis.client.info('commandstats'))?.[1] ?? 0);
  const before = await mgets();
  for (let i = 0; i < 5; i++) await sendThrough(b.port, { from: 'app@acme.test', to: `clean${i}@example.com` });
  await b.relay.scheduler.runDue();
  t.equal(rcpts.filter((r) => r.startsWith('clean')).length, 5, 'sent');
  t.equal(await mgets(), before, 'no MGET: the index ruled every recipient out');

  // b's subscription drops; a suppresses an address before b is back (its additions unheard by b).
  const fills = filled(b);
  await redis.client.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
  await sendThrough(a.port, { from: 'app@acme.test', to: 'gone@example.com' });
  await a.relay.scheduler.runDue();
  t.ok(await until(async () => (await redis.client.exists('tenant-relay:suppress:acme:gone@example.com')) === 1, 2000), 'suppressed in Redis');
  await sendThrough(b.port, { from: 'app@acme.test', to: 'gone@example.com' });
  await b.relay.scheduler.runDue();
  t.ok(await until(() => filled(b) > fills, 5000), "b's index filled again after its subscription came back");
  await sendThrough(b.port, { from: 'app@acme.test', to: 'gone@example.com' });
  await b.relay.scheduler.runDue();
  t.equal(rcpts.filter((r) => r === 'gone@example.com').length, 1, 'one try in the fleet: the bounce, neither while b was out of step nor after');

  // Removed by hand on a (the console, the command): b, which has it confirmed, sends to it again at once.
  const settled = await mgets();
  await sendThrough(b.port, { from: 'app@acme.test', to: 'gone@example.com' });
  await b.relay.scheduler.runDue();
  t.equal(await mgets(), settled, 'a confirmed suppression: no question to Redis the next time');
  const { RedisSuppressions } = await import('../relay/suppression/redis-store.js');
  await new RedisSuppressions(redis.client, { keyPrefix: 'tenant-relay:', signingKey: 'shared-signing-key-of-the-test-fleet-0123' }).remove('acme', 'gone@example.com');
  // Each round a message; once b has heard the removal on the channel, the next one is tried.
  const tried = async () => {
    await sendThrough(b.port, { from: 'app@acme.test', to: 'gone@example.com' });
    await b.relay.scheduler.runDue();
    return rcpts.filter((r) => r === 'gone@example.com').length === 2;
  };
  t.ok(await until(tried, 3000), 'after its removal, the address is tried');
});

t.test('a flood of additions on the channel (anyone who can publish there) does not keep a relay scanning Redis', needRedis, async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.close());
  const { relays } = await setup(t, { relays: 1, redis });
  const [relay] = relays as [TestRelay];
  const fills = () => relay.logs.filter((l) => l.event === 'suppression-index-filled').length;
  t.ok(await until(() => fills() > 0, 3000), 'filled');
  const first = fills();
  for (let round = 0; round < 8; round++) {
    const pipeline = redis.client.pipeline();
    for (let i = 0; i < 20_000; i++) pipeline.publish('tenant-relay:suppress-added', `acme:flood${round}-${i}@example.com`);
    await pipeline.exec();
  }
  await new Promise((r) => setTimeout(r, 500)); // the last fill it started
  t.ok(fills() - first <= 2, `refills for 160,000 published additions: ${fills() - first} (one bigger filter, not a scan per addition past its size)`);
});

t.test('the index never misses an address it was given, and rules most others out', async (t) => {
  const { BloomFilter } = await import('../relay/suppression/redis-index.js');
  const filter = new BloomFilter(100_000);
  for (let i = 0; i < 100_000; i++) filter.add(`t${i % 50}:user${i}@example.com`);
  let missed = 0;
  for (let i = 0; i < 100_000; i++) if (!filter.has(`t${i % 50}:user${i}@example.com`)) missed++;
  let falsePositives = 0;
  for (let i = 0; i < 100_000; i++) if (filter.has(`t${i % 50}:other${i}@example.com`)) falsePositives++;
  t.equal(missed, 0, 'no false negative');
  t.ok(falsePositives < 2000, `false positives at capacity: ${falsePositives} of 100,000 (under 2 %)`);
});

t.test('by hand: tenant-relay suppression add, list, export and remove, on the store the running relay reads', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-suppress-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const upstream = await startUpstream();
  const { rcpts } = upstream;
  t.teardown(() => upstream.close());
  const relay = await startFileRelay(dir, `delivery: { mode: queue, spool: { path: ${dir}/spool } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\ntenants:\n  - { id: acme, match: { domains: [acme.test] } }\n`);
  t.teardown(() => relay.close());
  const cli = (...args: string[]) => runCli(['suppression', ...args, '--config', relay.configFile]);
  t.match((await cli('add', '--tenant', 'acme', '--address', 'Pat@Example.com', '--reason', 'asked to stop', '--days', '7')).stdout, /^suppressed Pat@Example\.com for acme until /);
  t.match((await cli('list', '--tenant', 'acme')).stdout, /^pat@example\.com {2}hand {2}since .* {2}asked to stop$/m);
  t.match(JSON.parse((await cli('export')).stdout.trim()), { tenant: 'acme', address: 'pat@example.com', source: 'hand' });
  await sendThrough(relay.port, { from: 'app@acme.test', to: ['pat@example.com', 'kim@example.com'] });
  await relay.relay.scheduler.runDue();
  t.same(rcpts, ['kim@example.com'], 'the running relay skips it');
  t.equal((await cli('remove', '--tenant', 'acme', '--address', 'pat@example.com')).code, 0);
  t.equal((await cli('remove', '--tenant', 'acme', '--address', 'pat@example.com')).code, 1, 'nothing left to remove');
  t.equal((await cli('add', '--tenant', 'acme')).code, 2, 'usage');
});

t.test("the console's API: a tenant's token lists and changes its own tenant's list only", async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `ops:
  port: 0
  tokens:
    - { token: desk-token-0123456789abcdef, scopes: [queue], name: desk }
    - { token: acme-token-0123456789abcdef, scopes: [queue], tenant: acme }
delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }
tenants:
  - { id: acme, match: { domains: [acme.test] } }
  - { id: beta, match: { domains: [beta.test] } }
`,
    {},
    { manualScheduler: true },
  );
  t.teardown(() => relay.close());
  const api = async (p: string, token: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${relay.relay.opsPort}${p}`, { method: body ? 'POST' : 'GET', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  t.equal((await api('/api/suppressions', 'desk-token-0123456789abcdef', { tenant: 'beta', address: 'x@example.com' })).status, 200);
  t.equal((await api('/api/suppressions', 'acme-token-0123456789abcdef', { tenant: 'beta', address: 'y@example.com' })).status, 200, 'added, to its own tenant');
  const listed = async (token: string, q = '') => ((await api(`/api/suppressions${q}`, token)).body.suppressions as { tenant: string; address: string }[]).map((s) => `${s.tenant}:${s.address}`);
  t.same(await listed('acme-token-0123456789abcdef', '?tenant=beta'), ['acme:y@example.com'], "its own, whatever it asks for");
  t.same((await listed('desk-token-0123456789abcdef')).sort(), ['acme:y@example.com', 'beta:x@example.com']);
  t.equal((await api('/api/suppressions/remove', 'acme-token-0123456789abcdef', { tenant: 'beta', address: 'x@example.com' })).status, 404, "beta's entry: not its to remove");
  t.same((await listed('desk-token-0123456789abcdef', '?tenant=beta')), ['beta:x@example.com']);
  t.match(relay.logs.find((l) => l.event === 'console-action' && l.action === 'suppress'), { tenant: 'beta', address: 'x@example.com', by: 'console: desk' });
});

t.test('pass-through, action report: after the bounce the client hears about the others only; all suppressed is a 250 that sent nothing', async (t) => {
  const { upstream, rcpts } = await goneUpstream(t);
  const relay = await startTestRelay(`delivery: { mode: passthrough, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\ntenants:\n  - { id: acme, match: { domains: [acme.test] } }\n`);
  t.teardown(() => relay.close());
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: 'gone@example.com' })), /^550 5\.1\.1 /, 'the first: the upstream refuses it for good');
  t.equal(await replyOf(sendThrough(relay.port, { from: 'app@acme.test', to: ['gone@example.com', 'ok@example.com'] })), 'resolved', 'the next: 250 for the other recipient');
  t.match((await sendThrough(relay.port, { from: 'app@acme.test', to: 'gone@example.com' })).response, /^250 2\.0\.0 Ok: every recipient is suppressed for this sender; nothing was sent/);
  t.same(rcpts, ['gone@example.com', 'ok@example.com'], 'one try at the address in all');
});
