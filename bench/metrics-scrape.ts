// A /metrics scrape of a relay with 10,000 tenants that have all sent: its size and how long it takes, one
// at a time and twenty at once, and what twenty at once do to SMTP on the same relay. A real relay process
// (tenant files, pass-through to the sink) fed one message per tenant over reused sessions.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SmtpSession } from './load.js';
import { freePort, startRelayProcess, type Sink } from './processes.js';

export interface ScrapeResult {
  readonly tenants: number;
  readonly bytes: number;
  readonly series: number;
  readonly scrapeMs: number[];
  readonly concurrentScrapeMs: number;
  readonly smtpMsQuiet: number;
  readonly smtpMsDuringScrapes: number;
}

const TOKEN = 'bench-metrics-token-0123456789';

export async function metricsScrape(tmp: string, sink: Sink, tenants = 10_000): Promise<ScrapeResult> {
  const dir = path.join(tmp, 'metrics');
  const files = path.join(dir, 'tenants.d');
  fs.mkdirSync(files, { recursive: true });
  for (let i = 0; i < tenants; i++) {
    fs.writeFileSync(path.join(files, `t${i}.yaml`), `id: t${i}\nmatch: { domains: [t${i}.bench] }\nupstream: { host: 127.0.0.1, port: ${sink.port}, tls: none }\n`);
  }
  const opsPort = await freePort();
  const relay = await startRelayProcess(
    dir,
    (port) => `listen: [{ host: 127.0.0.1, port: ${port} }]
ops: { port: ${opsPort}, tokens: [{ token: ${TOKEN}, scopes: [metrics] }] }
delivery: { mode: passthrough, spool: { path: ${dir}/spool } }
smarthost: { host: 127.0.0.1, port: ${sink.port}, tls: none }
tenantFiles: [${files}]
tenantFileUpstreamHosts: { allow: [127.0.0.1/32], ports: [] }
`,
    {},
    60_000,
  );
  try {
    const sessions = await Promise.all(Array.from({ length: 10 }, async () => {
      const s = await SmtpSession.open(relay.port);
      await s.command('EHLO bench.test\r\n', 250);
      return s;
    }));
    const send = async (s: SmtpSession, tenant: number) => {
      await s.command(`MAIL FROM:<app@t${tenant}.bench>\r\n`, 250);
      await s.command('RCPT TO:<someone@example.com>\r\n', 250);
      await s.command('DATA\r\n', 354);
      await s.command(`From: <app@t${tenant}.bench>\r\nSubject: x\r\n\r\nhello\r\n.\r\n`, 250);
    };
    for (let i = 0; i < tenants; i += sessions.length) await Promise.all(sessions.map((s, j) => (i + j < tenants ? send(s, i + j) : undefined)));
    const scrape = async () => {
      const t0 = performance.now();
      const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      return { ms: performance.now() - t0, text };
    };
    const scrapeMs: number[] = [];
    let last = '';
    for (let i = 0; i < 10; i++) {
      const r = await scrape();
      scrapeMs.push(r.ms);
      last = r.text;
    }
    const timeSends = async () => {
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) await send(sessions[0] as SmtpSession, i);
      return (performance.now() - t0) / 20;
    };
    const smtpMsQuiet = await timeSends();
    const t0 = performance.now();
    const [, smtpMsDuringScrapes] = await Promise.all([Promise.all(Array.from({ length: 20 }, scrape)), timeSends()]);
    const concurrentScrapeMs = performance.now() - t0;
    for (const s of sessions) s.close();
    return {
      tenants,
      bytes: Buffer.byteLength(last),
      series: last.split('\n').filter((l) => l && !l.startsWith('#')).length,
      scrapeMs,
      concurrentScrapeMs,
      smtpMsQuiet,
      smtpMsDuringScrapes,
    };
  } finally {
    await relay.stop();
  }
}
