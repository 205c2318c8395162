// The operator's pack: the alert rules pass Prometheus's own checks and unit tests (promtool), every
// alert is tested firing and quiet, every metric a rule or a dashboard panel uses exists on the /metrics
// of a relay that has carried traffic, and no alert fires on the real /metrics of a healthy relay of each
// documented deployment (quick start, sidecar, fleet on Redis).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { hasRedis, startRedis } from './helpers/redis.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';
import { startReceiver } from './helpers/webhook-receiver.js';

const RULES = 'deploy/prometheus/tenant-relay-alerts.yaml';
const RULE_TESTS = 'deploy/prometheus/tenant-relay-alerts.test.yaml';
const DASHBOARD = 'deploy/grafana/tenant-relay.json';

interface Rule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules: Rule[] = (parse(fs.readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { panels: { id: number; type: string; targets?: { expr: string }[] }[]; templating: { list: { definition?: string }[] } };

const promtool = spawnSync('promtool', ['--version']).status === 0;
// Installed by .ci/run; on a developer's machine without it (apt-get install prometheus) these skip.
const needPromtool = promtool ? {} : { skip: process.env.CI ? false : 'promtool is not installed (apt-get install prometheus)' };

t.test('promtool check rules accepts the alert rules', needPromtool, async (t) => {
  const out = execFileSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
  t.match(out, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

t.test('promtool test rules: every alert fires where it should and not where it should not', needPromtool, async (t) => {
  const run = spawnSync('promtool', ['test', 'rules', RULE_TESTS], { encoding: 'utf8' });
  t.equal(run.status, 0, run.stdout + run.stderr);
  const tests = (parse(fs.readFileSync(RULE_TESTS, 'utf8')) as { tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests.flatMap((g) => g.alert_rule_test);
  for (const rule of rules) {
    const cases = tests.filter((c) => c.alertname === rule.alert);
    t.ok(cases.some((c) => c.exp_alerts.length > 0), `${rule.alert} is tested firing`);
    t.ok(cases.some((c) => c.exp_alerts.length === 0), `${rule.alert} is tested quiet`);
  }
});

t.test('every alert has a severity, a summary and a one-line runbook naming a tenant-relay command or check', async (t) => {
  for (const rule of rules) {
    t.match(rule.labels?.severity, /^(warning|critical)$/, rule.alert);
    t.ok(rule.annotations?.summary, `${rule.alert} summary`);
    t.match(rule.annotations?.runbook, /tenant-relay |\/readyz/, `${rule.alert} runbook`);
    t.notMatch(rule.annotations?.runbook ?? '', /\n/, `${rule.alert} runbook is one line`);
  }
});

t.test('the dashboard is importable JSON with unique panel ids and a query per panel', async (t) => {
  const ids = dashboard.panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length);
  for (const p of dashboard.panels.filter((p) => p.type !== 'row')) t.ok((p.targets ?? []).length > 0, `panel ${p.id} queries something`);
});

t.test('every metric a rule or a panel uses is on the /metrics of a relay that carried traffic', async (t) => {
  const upstream = await startUpstream({ rcpt: (a) => (a.startsWith('later') ? [451, '4.3.0 try later'] : undefined) });
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(`smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`);
  t.teardown(() => relay.close());
  await sendThrough(relay.port, { from: 'a@example.com', to: ['now@example.com', 'later@example.com'] }).catch(() => undefined);
  const text = await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();
  const exposed = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exposed.add(name ?? '');
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exposed.add(`${name}${suffix}`);
  }
  const used = (exprs: string[]) => new Set(exprs.flatMap((e) => e.match(/\btenant_relay_[a-z0-9_]+/g) ?? []));
  const inRules = used(rules.map((r) => r.expr));
  const inDashboard = used([...dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr)), ...dashboard.templating.list.map((v) => v.definition ?? '')]);
  t.ok(inRules.size >= 6 && inDashboard.size >= 15, `${inRules.size} metrics in the rules, ${inDashboard.size} in the dashboard`);
  // Exported only by a relay with limits.store (test/shared-limits checks it there).
  const withStoreOnly = new Set(['tenant_relay_limits_shared']);
  t.same([...inRules].filter((m) => !exposed.has(m) && !withStoreOnly.has(m)), [], 'the rules use only metrics the relay exposes');
  t.same([...inDashboard].filter((m) => !exposed.has(m) && !withStoreOnly.has(m)), [], 'the dashboard uses only metrics the relay exposes');
  t.notOk(exposed.has('tenant_relay_limits_shared'), 'a relay without a store exports no limits_shared series: TenantRelayLimitsNotShared cannot fire on it');
});

/**
 * A relay's own /metrics as promtool input: every sample held at its value for `minutes` (counters that do
 * not move: a healthy hour), labelled with the relay's instance.
 */
function asInputSeries(metricsText: string, instance: string, minutes: number): { series: string; values: string }[] {
  const series: { series: string; values: string }[] = [];
  for (const line of metricsText.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || !Number.isFinite(Number(m[4]))) continue;
    const labels = [`instance="${instance}"`, ...(m[3] ? [m[3]] : [])].join(',');
    series.push({ series: `${m[1]}{${labels}}`, values: `${Number(m[4])}x${minutes}` });
  }
  return series;
}

t.test('no shipped alert fires on a healthy relay of any documented deployment: its own /metrics, an hour of it, through promtool', needPromtool, async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  // The quick start and the sidecar: no store; a webhook that takes everything.
  const receiver = await startReceiver('whsec_' + Buffer.alloc(32, 7).toString('base64'));
  t.teardown(() => receiver.close());
  const deployments: [string, string][] = [
    ['quick-start', `delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`],
    ['sidecar', `delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\nevents: { webhook: { url: "${receiver.url}", secret: "${'whsec_' + Buffer.alloc(32, 7).toString('base64')}" } }\ntenants: [{ id: acme, match: { domains: [acme.test] }, limits: { messagesPerMinute: 30 } }]\n`],
  ];
  const redis = hasRedis ? await startRedis() : undefined;
  if (redis) {
    t.teardown(() => redis.close());
    deployments.push(['fleet', `delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\nlimits: { store: { redis: { url: "${redis.url}", signingKey: "shared-signing-key-of-the-test-fleet-0123" } } }\ntenants: [{ id: acme, match: { domains: [acme.test] }, limits: { messagesPerMinute: 30 } }]\n`]);
  }
  const input: { series: string; values: string }[] = [];
  for (const [name, yaml] of deployments) {
    const relay = await startTestRelay(yaml);
    t.teardown(() => relay.close());
    for (let i = 0; i < 3; i++) await sendThrough(relay.port, { from: 'app@acme.test', to: `r${i}@example.com` });
    for (let i = 0; i < 100 && relay.relay.scheduler.size > 0; i++) await new Promise((r) => setTimeout(r, 50));
    // Healthy means the webhook has taken what was waiting too: the events are sent after the deliveries, and
    // a scrape taken before them shows a backlog that never moves (a loaded machine once caught it so).
    const scrape = async () => (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();
    let metrics = await scrape();
    for (let i = 0; i < 100 && /^tenant_relay_webhook_backlog_events\{[^}]*\} [1-9]/m.test(metrics); i++) {
      await new Promise((r) => setTimeout(r, 50));
      metrics = await scrape();
    }
    input.push(...asInputSeries(metrics, name, 60));
  }
  t.ok(input.length > 100, `${input.length} series from ${deployments.map((d) => d[0]).join(', ')}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-healthy-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'healthy.test.yaml');
  fs.writeFileSync(
    file,
    stringify({
      rule_files: [path.resolve(RULES)],
      evaluation_interval: '1m',
      tests: [{ interval: '1m', input_series: input, alert_rule_test: rules.map((r) => ({ eval_time: '60m', alertname: r.alert, exp_alerts: [] })) }],
    }),
  );
  const run = spawnSync('promtool', ['test', 'rules', file], { encoding: 'utf8' });
  t.equal(run.status, 0, run.stdout + run.stderr);
});
