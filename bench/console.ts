// BENCH_ONLY=console: the mail console at scale. A trace store filled with BENCH_TRACE_MESSAGES (1 M)
// messages the way a platform's mail looks (200 tenants, 200,000 recipients, mostly delivered, some
// bounced or deferred), recorded through the store the relay uses: its CPU and bytes per message. Then
// the console's API on a real ops listener: p50/p99 of each way a support desk searches, a second page by
// cursor, a timeline; and, where Debian's chromium is installed, the page itself in a real browser: a
// search and a timeline, from the key press to the rows on screen.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseConfig } from '../config/load.js';
import { silentLogger } from '../relay/log.js';
import { startOpsServer } from '../relay/ops/http.js';
import type { DeliveryEvent } from '../relay/reporting/delivery-events.js';
import { TraceStore } from '../relay/reporting/trace-store.js';
import { spoolQueueView } from '../relay/queue/queue-view.js';
import { consoleRoutes } from '../relay/runtime/console-routes.js';
import { LocalSuppressions } from '../relay/suppression/local-store.js';

const MESSAGES = Number(process.env.BENCH_TRACE_MESSAGES ?? 1_000_000);
const TENANTS = 200;
const RECIPIENTS = 200_000;
const TOKEN = 'bench-console-token-0123456789abcdef';
const ROUNDS = 50;

export interface ConsoleResult {
  readonly messages: number;
  readonly recordUsPerMessage: number;
  readonly bytesPerMessage: number;
  readonly fillSeconds: number;
  readonly api: Record<string, { p50: number; p99: number }>;
  readonly page?: { searchMs: number; timelineMs: number; personToReplyMs: number };
}

const pick = (n: number, i: number) => (i * 2_654_435_761) % n;
/** The recipient of the i-th message traced. */
const recipientOf = (i: number) => `user${pick(RECIPIENTS, i + 7)}@example.com`;

export async function consoleScenario(tmp: string): Promise<ConsoleResult> {
  const dir = path.join(tmp, 'console');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'trace.db');
  const store = new TraceStore(file, { retentionMs: 30 * 86_400_000, maxBytes: 8 * 1024 ** 3, maintainEveryMs: 0 });
  const start = Date.now() - MESSAGES * 100;
  const cpu = process.cpuUsage();
  const wall = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    const at = start + i * 100;
    const tenant = `t${pick(TENANTS, i)}`;
    const id = `m${at.toString(36)}${i.toString(36).padStart(5, '0')}`;
    const rcpt = recipientOf(i);
    const facts = { id, tenant, mode: 'queue' as const, mailFrom: `noreply@${tenant}.test`, messageId: `<${id}@${tenant}.test>`, acceptedAt: at };
    store.accepted(facts, 2048, [rcpt], `sender domain ${tenant}.test is tenant ${tenant}; the tenant's own upstream`);
    const common = { queueId: id, messageId: facts.messageId, tenant, mode: 'queue' as const, from: facts.mailFrom, recipient: rcpt, acceptedAt: new Date(at).toISOString(), dsn: false, nextAttemptAt: null };
    const kind = i % 100;
    const events: DeliveryEvent[] = [{ ...common, id: `${id}.0`, type: 'accepted', time: new Date(at).toISOString(), upstream: null, attempt: 0, reply: `250 2.0.0 Ok: queued as ${id}`, upstreamReply: null }];
    const said = (code: number, enhanced: string, text: string) => ({ code, enhanced, text, queueId: code === 250 ? `Q${i}` : undefined }) as DeliveryEvent['upstreamReply'];
    if (kind < 3) events.push({ ...common, id: `${id}.1`, type: 'bounced', time: new Date(at + 40).toISOString(), upstream: tenant, attempt: 1, reply: '550 5.1.1 Recipient rejected', upstreamReply: said(550, '5.1.1', 'User unknown') });
    else {
      if (kind < 5) events.push({ ...common, id: `${id}.1`, type: 'deferred', time: new Date(at + 40).toISOString(), upstream: tenant, attempt: 1, reply: '451 4.4.1 Upstream unreachable', upstreamReply: null, nextAttemptAt: new Date(at + 60_000).toISOString() });
      events.push({ ...common, id: `${id}.2`, type: 'delivered', time: new Date(at + (kind < 5 ? 60_040 : 40)).toISOString(), upstream: tenant, attempt: kind < 5 ? 2 : 1, reply: `250 2.0.0 Ok: delivered via ${tenant}`, upstreamReply: said(250, '2.0.0', `Ok: queued as Q${i}`) });
    }
    store.events(events);
  }
  store.flush();
  const used = process.cpuUsage(cpu);
  const fillSeconds = (performance.now() - wall) / 1000;
  store.maintain();
  const bytes = ['', '-wal'].reduce((n, s) => n + (fs.existsSync(file + s) ? fs.statSync(file + s).size : 0), 0);

  const suppressions = new LocalSuppressions(path.join(dir, 'suppressions.db'));
  const server = await startOpsServer(
    { host: '127.0.0.1', port: 0 },
    consoleRoutes({ trace: { search: (s, scope) => store.search(s, scope), message: (id, scope) => store.find({ queueId: id }, 1, scope)[0] }, queue: spoolQueueView(() => path.join(dir, 'spool')), applyRequests: async () => {}, logger: silentLogger, config: () => parseConfig('smarthost: { host: 127.0.0.1, tls: none }\n', 'bench.yaml', {}), smtpPort: () => undefined, sendTestOutcome: async () => undefined, suppression: () => suppressions }),
    () => ({ tokens: [{ token: TOKEN, scopes: ['trace', 'queue'], name: 'bench' }], openScopes: [] }),
  );
  const base = `http://127.0.0.1:${server.port}`;
  const get = async (p: string) => {
    const res = await fetch(base + p, { headers: { authorization: `Bearer ${TOKEN}` } });
    if (!res.ok) throw new Error(`${p}: ${res.status}`);
    return (await res.json()) as { messages?: { queueId: string }[]; next?: string };
  };
  const timed = async (make: (i: number) => string) => {
    const ms: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const p = make(i);
      const t0 = performance.now();
      await get(p);
      ms.push(performance.now() - t0);
    }
    ms.sort((a, b) => a - b);
    return { p50: round(ms[Math.floor(ms.length / 2)] ?? 0), p99: round(ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))] ?? 0) };
  };
  const idOf = (i: number) => {
    const n = pick(MESSAGES, i + 11);
    return `m${(start + n * 100).toString(36)}${n.toString(36).padStart(5, '0')}`;
  };
  const second = (await get('/api/messages?q=noreply%40t1.test&limit=50')).next ?? '';
  const api = {
    'an address (recipient or sender)': await timed((i) => `/api/messages?q=${recipientOf(pick(MESSAGES, i + 3))}`),
    'an address no message went to': await timed((i) => `/api/messages?q=nobody${i}%40example.com`),
    'a busy sender (5,000 messages)': await timed(() => '/api/messages?q=noreply%40t1.test'),
    'a Message-ID': await timed((i) => `/api/messages?q=${encodeURIComponent(`<${idOf(i)}@t0.test>`)}`),
    'a queue id': await timed((i) => `/api/messages?q=${idOf(i)}`),
    'status bounced': await timed(() => '/api/messages?status=bounced'),
    'tenant and status': await timed((i) => `/api/messages?tenant=t${i % TENANTS}&status=deferred`),
    'everything, newest first': await timed(() => '/api/messages'),
    'the next page (cursor)': await timed(() => `/api/messages?q=noreply%40t1.test&cursor=${second}`),
    'a timeline': await timed((i) => `/api/messages/${idOf(i)}`),
  };
  const page = await inBrowser(base, recipientOf(pick(MESSAGES, 5))).catch((err: Error) => {
    console.log(`console page: not measured (${err.message})`);
    return undefined;
  });
  await server.close();
  store.close();
  suppressions.close();
  return { messages: MESSAGES, recordUsPerMessage: round((used.user + used.system) / MESSAGES), bytesPerMessage: Math.round(bytes / MESSAGES), fillSeconds: round(fillSeconds), api, ...(page ? { page } : {}) };
}

/** A search and a timeline in Debian's chromium, from the key press to the rows on screen (median of 5). */
async function inBrowser(base: string, address: string) {
  const executablePath = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
  if (!executablePath) throw new Error('chromium is not installed');
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
  try {
    const page = await browser.newPage();
    await page.goto(`${base}/console`);
    await page.fill('#token', TOKEN);
    await page.press('#token', 'Enter');
    await page.waitForSelector('#view-search:not([hidden])');
    const search: number[] = [];
    const timeline: number[] = [];
    for (let i = 0; i < 5; i++) {
      await page.goto(`${base}/console#/search`);
      await page.waitForSelector('#view-search:not([hidden])');
      await page.fill('#q', address);
      const t0 = performance.now();
      await page.press('#q', 'Enter');
      await page.waitForSelector(`#search-summary[data-for="${new URLSearchParams({ q: address }).toString()}"]`);
      search.push(performance.now() - t0);
      const t1 = performance.now();
      await page.click('#results tbody tr a');
      await page.waitForSelector('#view-message:not([hidden]) #m-timeline li .said');
      timeline.push(performance.now() - t1);
    }
    const med = (xs: number[]) => round([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0);
    return { searchMs: med(search), timelineMs: med(timeline), personToReplyMs: round(med(search) + med(timeline)) };
  } finally {
    await browser.close();
  }
}

const round = (n: number) => Math.round(n * 10) / 10;

export function consoleTable(r: ConsoleResult): string {
  const lines = [
    `mail console: ${r.messages.toLocaleString('en')} messages traced in ${r.fillSeconds} s; recording ${r.recordUsPerMessage} us CPU and ${r.bytesPerMessage} bytes per message`,
    '| API request | p50 ms | p99 ms |',
    '|---|---|---|',
    ...Object.entries(r.api).map(([k, v]) => `| ${k} | ${v.p50} | ${v.p99} |`),
  ];
  if (r.page) lines.push(`page in chromium: search ${r.page.searchMs} ms, timeline ${r.page.timelineMs} ms; a person's address to the upstream's reply ${r.page.personToReplyMs} ms`);
  return lines.join('\n');
}
