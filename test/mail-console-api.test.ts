// The mail console's API: a search by what a support desk knows (an address, a Message-ID, a queue id, a
// status), newest first, a page at a time; one message's timeline with the upstream's own reply; the
// queue; retry, hold, release and delete, each logged with who asked. A tenant's token sees and acts on
// its own tenant's mail only, through every path.
import t from 'tap';
import { consoleFixture, TOKENS } from './helpers/console.js';
import { until } from './helpers/wait.js';

t.test('search finds a message by recipient, sender, Message-ID, queue id and status; the timeline has the upstream reply', async (t) => {
  const f = await consoleFixture(t);
  const delivered = await f.send('app@acme.test', 'ok@example.com', '<reset-1@acme.test>');
  const bounced = await f.send('app@acme.test', 'nobody@example.com');
  await until(() => f.acmeUpstream.received.length === 1 && f.relay.relay.scheduler.size === 0, 5000);
  const ids = async (query: string) => ((await f.api(`/api/messages?${query}`, TOKENS.desk)).body.messages as { queueId: string }[]).map((m) => m.queueId);
  t.same(await ids('q=ok@example.com'), [delivered], 'by recipient');
  t.same(await ids('from=app@acme.test'), [bounced, delivered], 'by sender, newest first');
  t.equal((await ids('q=app@acme.test')).length, 3, 'an address typed in: as sender or recipient (the bounce notice went to it)');
  t.same(await ids(`q=${encodeURIComponent('<reset-1@acme.test>')}`), [delivered], 'by Message-ID');
  t.same(await ids('q=reset-1@acme.test'), [delivered], 'by Message-ID without its brackets');
  t.same(await ids(`q=${delivered}`), [delivered], 'by queue id');
  t.same(await ids('status=bounced'), [bounced], 'by status');
  t.same(await ids('status=delivered&tenant=acme'), [delivered]);

  const { body } = await f.api(`/api/messages/${delivered}`, TOKENS.desk);
  const message = body.message as { status: string; decision: string; events: { type: string; upstreamReply: string | null; upstreamQueueId: string | null }[] };
  t.equal(message.status, 'delivered');
  t.match(message.decision, /acme/, 'why it went where it went');
  t.match(message.events, [{ type: 'accepted' }, { type: 'delivered', upstreamReply: /^250 2\.0\.0 Ok: queued as 4Tq000000Z/, upstreamQueueId: '4Tq000000Z' }]);
  const bounce = (await f.api(`/api/messages/${bounced}`, TOKENS.desk)).body.message as { status: string; events: { upstreamReply: string | null }[] };
  t.equal(bounce.status, 'bounced');
  t.match(bounce.events.at(-1)?.upstreamReply, /^550 5\.1\.1 .*User unknown/);
});

t.test('pages by cursor: each message once, newest first, however many arrive meanwhile', async (t) => {
  const f = await consoleFixture(t, { manualScheduler: true });
  const sent: string[] = [];
  for (let i = 0; i < 5; i++) sent.push(await f.send('app@beta.test', `r${i}@example.com`));
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 5; page++) {
    const { body } = await f.api(`/api/messages?q=app@beta.test&limit=2${cursor ? `&cursor=${cursor}` : ''}`, TOKENS.desk);
    seen.push(...(body.messages as { queueId: string }[]).map((m) => m.queueId));
    if (page === 0) await f.send('app@beta.test', 'late@example.com'); // newer than the first page: not on the next ones
    cursor = body.next as string | undefined;
    if (!cursor) break;
  }
  t.same(seen, [...sent].reverse());
  const acceptedAt = async (id: string) => ((await f.api(`/api/messages/${id}`, TOKENS.desk)).body.message as { acceptedAt: string }).acceptedAt;
  const [since, until] = [await acceptedAt(sent[1] ?? ''), await acceptedAt(sent[3] ?? '')];
  const ranged = ((await f.api(`/api/messages?q=app@beta.test&since=${since}&until=${until}`, TOKENS.desk)).body.messages as { queueId: string }[]).map((m) => m.queueId);
  t.ok(ranged.includes(sent[1] ?? ''), 'a time range takes what was accepted at since');
  t.notOk(ranged.includes(sent[3] ?? '') || ranged.includes(sent[4] ?? ''), 'and nothing from until on');
  t.equal((await f.api('/api/messages?since=yesterday', TOKENS.desk)).status, 400, 'a time that is not one: 400');
  t.equal((await f.api('/api/messages?cursor=bm90LWEtY3Vyc29y', TOKENS.desk)).status, 400, "a cursor the relay did not give: 400");
});

t.test("a tenant's token sees and acts on its own tenant's mail only, through every path", async (t) => {
  const f = await consoleFixture(t, { manualScheduler: true });
  const beta = await f.send('app@beta.test', 'someone@example.com');
  const acme = await f.send('app@acme.test', 'someone@example.com');
  const ids = async (query: string, token: string) => ((await f.api(`/api/messages?${query}`, token)).body.messages as { queueId: string }[]).map((m) => m.queueId);
  t.same(await ids('q=someone@example.com', TOKENS.acme), [acme], 'search: the same recipient, its own message only');
  t.same(await ids('tenant=beta', TOKENS.acme), [], 'asking for another tenant finds nothing');
  t.same(await ids(`q=${beta}`, TOKENS.acme), [], "another tenant's queue id finds nothing");
  t.equal((await f.api(`/api/messages/${beta}`, TOKENS.acme)).status, 404, 'timeline: not found (not "forbidden": nothing to learn)');
  const queue = (await f.api('/api/queue?tenant=beta', TOKENS.acme)).body.messages as { queueId: string }[];
  t.same(queue.map((q) => q.queueId), [acme], 'queue: its own, whatever tenant it asks for');
  for (const action of ['retry', 'hold', 'release', 'delete']) t.equal((await f.api(`/api/queue/${beta}/${action}`, TOKENS.acme, 'POST')).status, 404, `${action}: not found`);
  t.equal(f.relay.relay.scheduler.size, 2, 'nothing was done to it');
  t.equal((await f.api(`/api/queue/${acme}/hold`, TOKENS.reader, 'POST')).status, 403, 'a token without the queue scope cannot act');
  t.equal((await f.api('/api/messages?q=x', 'not-a-token-at-all-0123456789')).status, 401);
  t.same(await ids('q=someone@example.com', TOKENS.beta), [beta], "and beta's token sees beta's");
});

t.test('hold, release, retry and delete: each applied at once, logged with who asked, told as a delivery event', async (t) => {
  const f = await consoleFixture(t);
  const id = await f.send('app@acme.test', 'later@example.com');
  t.ok(await until(async () => ((await f.api(`/api/messages/${id}`, TOKENS.desk)).body.message as { status?: string } | null)?.status === 'deferred', 5000), 'deferred by the upstream');
  const act = async (action: string) => (await f.api(`/api/queue/${id}/${action}`, TOKENS.desk, 'POST')).body.queued as { onHold: unknown; nextAttemptAt: string | null } | null;
  t.ok((await act('hold'))?.onHold, 'on hold');
  t.match(f.relay.logs.find((l) => l.event === 'queue-held'), { id, by: 'console: support-desk' });
  t.match(f.relay.logs.find((l) => l.event === 'console-action'), { action: 'hold', id, tenant: 'acme', by: 'console: support-desk' });
  const held = (await f.api(`/api/queue`, TOKENS.desk)).body.messages as { queueId: string; onHold: unknown }[];
  t.match(held, [{ queueId: id, onHold: { since: String } }], 'the queue view shows it held by hand');
  f.deferring = false;
  // A round an hour on: everything not held is due by then.
  await f.relay.relay.scheduler.runDue(Date.now() + 3_600_000);
  t.equal(f.acmeUpstream.received.length, 0, 'a held message is not attempted');
  t.notOk((await act('release'))?.onHold, 'released');
  t.ok(await until(() => f.acmeUpstream.received.length === 1, 5000), 'and delivered');
  const events = ((await f.api(`/api/messages/${id}`, TOKENS.desk)).body.message as { events: { type: string; reply: string }[] }).events;
  t.match(events.find((e) => e.type === 'held'), { reply: /^451 4\.3\.0 Held by hand \(console: support-desk\)/ });

  t.equal((await f.api(`/api/queue/${id}/delete`, TOKENS.desk, 'POST')).status, 404, 'a message no longer queued is not found to act on');
  f.deferring = true;
  const gone = await f.send('app@acme.test', 'later@example.com');
  t.ok(await until(async () => ((await f.api(`/api/messages/${gone}`, TOKENS.desk)).body.message as { status?: string } | null)?.status === 'deferred', 5000));
  const deletion = await f.api(`/api/queue/${gone}/delete`, TOKENS.desk, 'POST');
  t.same([deletion.status, deletion.body.queued], [200, null], 'deleted');
  const deleted = ((await f.api(`/api/messages/${gone}`, TOKENS.desk)).body.message as { status: string; events: { type: string; reply: string }[] });
  t.equal(deleted.status, 'deleted');
  t.match(deleted.events.at(-1), { type: 'deleted', reply: /^550 5\.0\.0 Deleted from the queue by hand \(console: support-desk\)/ });
});

t.test("a send-test through a tenant's route: the platform's sample to one address, its upstream's answer; a tenant's token for its own tenant only", async (t) => {
  const f = await consoleFixture(t);
  const sent = await f.api('/api/send-test', TOKENS.desk, 'POST', { tenant: 'acme', to: 'pat@example.com' });
  t.equal(sent.status, 200);
  t.match(sent.body.reply, /^250 2\.0\.0 Ok: queued as /);
  const outcome = async () => (await f.api(`/api/send-test/${String(sent.body.token)}`, TOKENS.desk)).body as { final?: boolean; recipients?: unknown[] };
  t.ok(await until(async () => (await outcome()).final === true, 5000));
  t.match(await outcome(), { tenant: 'acme', upstream: 'acme', recipients: [{ rcpt: 'pat@example.com', status: 'sent', upstreamQueueId: '4Tq000000Z' }] });
  t.match(f.acmeUpstream.received[0]?.raw.toString(), /Subject: Reset your password/, "the platform's sample, not the caller's content");
  t.match(f.relay.logs.find((l) => l.event === 'console-action' && l.action === 'send-test'), { tenant: 'acme', by: 'console: support-desk' });

  t.equal((await f.api('/api/send-test', TOKENS.acme, 'POST', { tenant: 'beta', to: 'pat@example.com' })).status, 200, "a tenant's token sends for its own tenant, whatever it names");
  t.ok(await until(() => f.betaUpstream.received.length === 0 && f.acmeUpstream.received.length === 2, 5000), "through acme's route: beta's upstream got nothing");
  t.equal((await f.api(`/api/send-test/${String(sent.body.token)}`, TOKENS.beta)).status, 404, "another tenant's send-test: not found");
  for (const to of ['a@example.com, b@example.com', 'not-an-address', '']) t.equal((await f.api('/api/send-test', TOKENS.desk, 'POST', { tenant: 'acme', to })).status, 400, `to ${JSON.stringify(to)}: 400`);
  t.equal((await f.api('/api/send-test', TOKENS.reader, 'POST', { tenant: 'acme', to: 'pat@example.com' })).status, 403, 'a read-only token cannot send');
});
