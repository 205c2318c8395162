// A minimal SMTP sink for the benchmark, run as its own process: it answers every command at once and
// counts the messages whose final dot it has seen. It does as little as an SMTP server can, so that the
// figures measure the relay, not the sink. Started by run.ts with `fork`; it answers { count } on request.
import net from 'node:net';
import { sinkSession } from './sink-session.js';

let delivered = 0;
// BENCH_SINK_CHUNKING=1: the sink offers BDAT as well (RFC 3030).
const chunking = process.env.BENCH_SINK_CHUNKING === '1';
const server = net.createServer((socket) => sinkSession(socket, { name: 'bench-sink', chunking, delivered: () => delivered++ }));

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as net.AddressInfo;
  process.send?.({ port });
});
process.on('message', (m: { type: string }) => {
  if (m.type === 'count') process.send?.({ count: delivered });
  if (m.type === 'stop') server.close(() => process.exit(0));
});
// Never outlive the benchmark that started it.
process.on('disconnect', () => process.exit(0));
