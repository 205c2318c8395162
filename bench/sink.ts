// A minimal SMTP sink for the benchmark, run as its own process: it answers every command at once and
// counts the messages whose final dot it has seen. It does as little as an SMTP server can, so that the
// figures measure the relay, not the sink. Started by run.ts with `fork`; it answers { count } on request.
import net from 'node:net';
import { sinkOffersChunking, sinkSession } from './sink-session.js';

let delivered = 0;
// The sink offers CHUNKING (BDAT, RFC 3030), as the upstreams a relay hands mail to do (Postfix's smtpd
// since 3.4, Microsoft 365, Gmail), so the relay sends a small message with its envelope in one write, as it
// does there. Postfix's SMTP client never sends BDAT: it sends DATA either way. BENCH_SINK_CHUNKING=0: DATA
// only, the shape of an upstream without CHUNKING (Amazon SES, for one), one more round trip a message.
const chunking = sinkOffersChunking();
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
