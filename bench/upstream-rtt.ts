// BENCH_ONLY=rtt: what a message costs in time to an upstream that is not on the same machine, and what
// BDAT (RFC 3030) saves there. Loopback has no round trip worth the name, so a proxy on loopback holds
// every read for BENCH_RTT_MS / 2 each way before passing it on (a round trip of BENCH_RTT_MS, 20 ms by
// default: a cloud upstream in the same region). Behind it, a bare sink that offers CHUNKING or not; in
// front, the relay's own client (sendViaSmtp and its pool), one 1 KB message at a time over one open
// connection, as the queue sends a tenant's mail: the time from the send to the upstream's answer.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { SmtpUpstream } from '../config/types.js';
import { UpstreamPools } from '../relay/delivery/pools.js';
import { sendViaSmtp } from '../relay/delivery/smtp.js';
import { median } from './cold-start.js';
import { sinkSession } from './sink-session.js';
import { message } from './throughput.js';

const RTT_MS = Number(process.env.BENCH_RTT_MS ?? 20);
const MESSAGES = 40;
const ROUNDS = 3;

export interface RttRow {
  readonly chunking: boolean;
  readonly p50Ms: number;
  readonly p90Ms: number;
}

/** Passes each read on after half the round trip, both ways. */
function delayingProxy(targetPort: number): net.Server {
  return net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => (s === client ? upstream : client).destroy());
    }
    const relay = (from: net.Socket, to: net.Socket) => from.on('data', (d: Buffer) => setTimeout(() => to.writable && to.write(d), RTT_MS / 2));
    relay(client, upstream);
    relay(upstream, client);
  });
}

const listen = (server: net.Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));

async function once(chunking: boolean): Promise<number[]> {
  const target = net.createServer((socket) => sinkSession(socket, { name: 'rtt-sink', chunking }));
  const proxy = delayingProxy(await listen(target));
  const port = await listen(proxy);
  const pools = new UpstreamPools('bench.test');
  const upstream: SmtpUpstream = { kind: 'smtp', owner: 'platform', name: 'rtt', host: '127.0.0.1', port, tls: 'none', allowInsecureAuth: false, timeoutMs: 10_000, connectTimeoutMs: 5_000, maxConnections: 1 };
  const envelope = { mailFrom: 'app@acme.bench', rcptTo: ['someone@example.com'] };
  const body = message(1);
  try {
    // The connection opened and logged in first: what is timed is the transaction alone.
    await sendViaSmtp(pools, upstream, envelope, body);
    const times: number[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      const started = performance.now();
      const sent = await sendViaSmtp(pools, upstream, envelope, body);
      if (sent.outcomes[0]?.status !== 'sent') throw new Error(`not sent: ${JSON.stringify(sent.outcomes[0]?.reply)}`);
      times.push(performance.now() - started);
    }
    return times;
  } finally {
    pools.close();
    proxy.close();
    target.close();
  }
}

export async function upstreamRttScenario(): Promise<RttRow[]> {
  const times = new Map<boolean, number[]>([
    [false, []],
    [true, []],
  ]);
  for (let round = 0; round < ROUNDS; round++) for (const chunking of [false, true]) times.get(chunking)?.push(...(await once(chunking)));
  return [...times].map(([chunking, t]) => {
    const sorted = [...t].sort((a, b) => a - b);
    return { chunking, p50Ms: median(sorted), p90Ms: sorted[Math.floor(sorted.length * 0.9)] ?? Number.NaN };
  });
}

export function rttLines(rows: readonly RttRow[]): string[] {
  return [
    `one 1 KB message at a time over one open connection, through a proxy that makes a ${RTT_MS} ms round trip (${ROUNDS} alternated rounds of ${MESSAGES})`,
    ...rows.map((r) => `  ${(r.chunking ? 'upstream offers CHUNKING (BDAT with the envelope)' : 'upstream without CHUNKING (DATA)').padEnd(50)} p50 ${r.p50Ms.toFixed(1)} ms  p90 ${r.p90Ms.toFixed(1)} ms`),
  ];
}
