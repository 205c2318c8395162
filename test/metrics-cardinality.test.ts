// /metrics stays small however many tenants send: the first ops.tenantLabels.max tenants seen (and those
// listed in `always`) keep label values of their own, every other is counted as "other", and no histogram
// carries a tenant or upstream label. 100 tenants, each sending one message through its own upstream.
import t from 'tap';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

t.test('100 tenants send: at most max + always tenant label values, the rest "other"; histograms by route only', async (t) => {
  const upstream = await startUpstream({ rcpt: (a) => (a.startsWith('later') ? [451, '4.2.0 try later'] : undefined) });
  t.teardown(() => upstream.close());
  const tenants = Array.from({ length: 100 }, (_, i) => `  - { id: t${i}, match: { domains: [t${i}.test] }, upstream: { host: 127.0.0.1, port: ${upstream.port}, tls: none } }`).join('\n');
  const relay = await startTestRelay(`ops: { port: 0, tenantLabels: { max: 5, always: [t99] } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\ntenants:\n${tenants}\n`);
  t.teardown(() => relay.close());
  for (let i = 0; i < 100; i++) await sendThrough(relay.port, { from: `app@t${i}.test`, to: ['now@example.com', 'later@example.com'] }).catch(() => undefined);
  const text = await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();
  const tenantValues = new Set([...text.matchAll(/\btenant="([^"]*)"/g)].map((m) => m[1]));
  t.same([...tenantValues].sort(), ['other', 't0', 't1', 't2', 't3', 't4', 't99'].sort(), 'five first seen, the one always labelled, and other');
  const upstreamValues = new Set([...text.matchAll(/\bupstream="([^"]*)"/g)].map((m) => m[1]));
  t.ok(upstreamValues.size <= 7, `upstream label values: ${[...upstreamValues].join(', ')}`);
  t.notMatch(text, /tenant_relay_upstream_send_seconds_bucket\{[^}]*(tenant|upstream)=/, 'the histogram has no tenant or upstream label');
  t.match(text, /tenant_relay_upstream_send_seconds_bucket\{le="[^"]+",via="tenant"\}/);
  t.match(text, /^tenant_relay_recipients_delivered_total\{tenant="other",upstream="other"\} 94$/m, 'the others are counted, together');
  const series = text.split('\n').filter((l) => l.startsWith('tenant_relay_') && !l.startsWith('tenant_relay_process') && !l.startsWith('tenant_relay_nodejs'));
  t.ok(series.length < 150, `${series.length} relay series for 100 tenants`);
});
