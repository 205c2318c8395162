// A minimal SMTP sink for the benchmark, run as its own process: it answers every command at once and
// counts the messages whose final dot it has seen. It does as little as an SMTP server can, so that the
// figures measure the relay, not the sink. Started by run.ts with `fork`; it answers { count } on request.
import net from 'node:net';

const END = Buffer.from('\r\n.\r\n');
let delivered = 0;
let bytes = 0;

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let inData = false;
  let line = '';
  // The last bytes of the previous chunk, so an end marker split across chunks is still found.
  let tail: Buffer = Buffer.alloc(0);
  socket.write('220 bench-sink ESMTP\r\n');
  socket.on('data', (chunk: Buffer) => {
    let rest = chunk;
    while (rest.length > 0) {
      if (inData) {
        const joined = tail.length > 0 ? Buffer.concat([tail, rest]) : rest;
        const end = joined.indexOf(END);
        if (end === -1) {
          bytes += rest.length;
          tail = joined.subarray(Math.max(0, joined.length - 4));
          return;
        }
        const consumed = end + END.length - tail.length;
        bytes += consumed;
        rest = rest.subarray(consumed);
        tail = Buffer.alloc(0);
        inData = false;
        delivered++;
        socket.write('250 2.0.0 Ok: sunk\r\n');
        continue;
      }
      const nl = rest.indexOf(10);
      if (nl === -1) {
        line += rest.toString('latin1');
        return;
      }
      line += rest.subarray(0, nl + 1).toString('latin1');
      rest = rest.subarray(nl + 1);
      const verb = line.slice(0, 4).toUpperCase();
      line = '';
      if (verb === 'EHLO') socket.write('250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 1073741824\r\n');
      else if (verb === 'DATA') {
        inData = true;
        // A message may end right after DATA's 354 with nothing but the dot: "\r\n.\r\n" needs the CRLF.
        tail = Buffer.from('\r\n');
        socket.write('354 End data with <CR><LF>.<CR><LF>\r\n');
      } else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
      else socket.write('250 2.0.0 Ok\r\n');
    }
  });
  socket.on('error', () => socket.destroy());
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as net.AddressInfo;
  process.send?.({ port });
});
process.on('message', (m: { type: string }) => {
  if (m.type === 'count') process.send?.({ count: delivered, bytes });
  if (m.type === 'stop') server.close(() => process.exit(0));
});
// Never outlive the benchmark that started it.
process.on('disconnect', () => process.exit(0));
