// A client cannot walk the platform's tenant API: lookups that reach it are capped per session and per
// client address (then 451 4.7.1), "no such tenant" answers are kept apart from the records of real
// tenants (random senders never push those out), and a 404 that says the whole domain is nobody's spares
// the API every other sender at that domain.
import t, { type Test } from 'tap';
import { type Platform, startPlatform } from './helpers/platform.js';
import { startTestRelay } from './helpers/relay.js';
import { openRawSession } from './helpers/smtp-client.js';
import { startUpstream } from './helpers/upstream.js';

async function setup(t: Test, answer: Platform['answer'], extra = '') {
  const platform = await startPlatform(answer);
  t.teardown(() => platform.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(
    `smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\ntenantSource: { url: "${platform.url}", token: t, maxEntries: 50, upstreamHosts: { allow: [127.0.0.1/32], ports: [] }${extra} }\n`,
  );
  t.teardown(() => relay.close());
  return { platform, relay, upstream };
}

const random = () => Math.random().toString(36).slice(2, 10);

t.test('300 MAIL FROM / RSET pairs of random senders in one session: 20 requests to the platform, then 451 4.7.1', async (t) => {
  const { platform, relay } = await setup(t, () => ({ status: 404 }));
  const s = await openRawSession(relay.port);
  t.teardown(() => s.close());
  await s.send('EHLO walker.test\r\n');
  const replies: string[] = [];
  for (let i = 0; i < 300; i++) {
    replies.push(await s.send(`MAIL FROM:<${random()}@${random()}.test>\r\n`));
    await s.send('RSET\r\n');
  }
  t.equal(platform.requests.length, 20, 'maxLookupsPerSession (20) requests, not 300');
  t.equal(replies.filter((r) => r.startsWith('250')).length, 20);
  t.ok(replies.slice(20).every((r) => /^451 4\.7\.1 Too many senders this relay had to look up/.test(r)), 'the rest: 451 4.7.1');
});

t.test('per client address: sessions after sessions share one budget a minute', async (t) => {
  const { platform, relay } = await setup(t, () => ({ status: 404 }), ', maxLookupsPerClientPerMinute: 30');
  for (let n = 0; n < 3; n++) {
    const s = await openRawSession(relay.port);
    await s.send('EHLO walker.test\r\n');
    for (let i = 0; i < 20; i++) {
      await s.send(`MAIL FROM:<${random()}@${random()}.test>\r\n`);
      await s.send('RSET\r\n');
    }
    s.close();
  }
  t.equal(platform.requests.length, 30);
});

t.test("random misses never push a real tenant's record out of the cache; a domain the platform calls nobody's is asked about once", async (t) => {
  const { platform, relay } = await setup(t, (by, value) =>
    value.endsWith('@real.test') ? { body: { id: 'real', match: { domains: ['real.test'] } } } : value.endsWith('@nobody.test') ? { status: 404, body: { domainClaimed: false } } : { status: 404 },
  );
  const session = async (senders: string[]) => {
    const s = await openRawSession(relay.port);
    await s.send('EHLO app.test\r\n');
    for (const from of senders) {
      await s.send(`MAIL FROM:<${from}>\r\n`);
      await s.send('RSET\r\n');
    }
    s.close();
  };
  await session(['app@real.test']);
  for (let n = 0; n < 5; n++) await session(Array.from({ length: 20 }, () => `${random()}@${random()}.test`));
  const before = platform.requests.length;
  await session(['app@real.test']);
  t.equal(platform.requests.length, before, 'the real tenant is still cached after 100 misses in a 50-entry cache');
  await session(['a@nobody.test', 'b@nobody.test', 'c@nobody.test']);
  t.equal(platform.requests.filter((r) => r.endsWith('@nobody.test')).length, 1, 'one request for the whole domain');
});
