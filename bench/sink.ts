// A minimal SMTP sink for the benchmark, run as its own process: it answers every command at once and
// counts the messages whose final dot it has seen. It does as little as an SMTP server can, so that the
// figures measure the relay, not the sink. Started by run.ts with `fork`; it answers { count } on request.
import net from 'node:net';
import { smtpReader } from './smtp-reader.js';

let delivered = 0;

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.write('220 bench-sink ESMTP\r\n');
  const read = smtpReader({
    command(line) {
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') socket.write('250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 1073741824\r\n');
      else if (verb === 'DATA') {
        socket.write('354 End data with <CR><LF>.<CR><LF>\r\n');
        return 'data';
      } else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
      else socket.write('250 2.0.0 Ok\r\n');
      return undefined;
    },
    endOfData() {
      delivered++;
      socket.write('250 2.0.0 Ok: sunk\r\n');
    },
  });
  socket.on('data', read);
  socket.on('error', () => socket.destroy());
});

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
