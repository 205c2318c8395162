// One session of the bench's bare sinks: every command answered at once, the message read to its final
// dot or by its BDAT chunks' sizes (when CHUNKING is offered, as Postfix, Microsoft 365 and Gmail do),
// and nothing else done, so that the figures measure the relay, not the sink.
import type net from 'node:net';
import { smtpReader } from './smtp-reader.js';

/**
 * Whether the bench's sink offers CHUNKING: yes unless BENCH_SINK_CHUNKING=0. Read by the sink's process
 * and by the run that prints and records which sink it measured against.
 */
export const sinkOffersChunking = (): boolean => process.env.BENCH_SINK_CHUNKING !== '0';

export function sinkSession(socket: net.Socket, o: { readonly name: string; readonly chunking: boolean; readonly delivered?: () => void }): void {
  const ehlo = `250-${o.name}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n${o.chunking ? '250-CHUNKING\r\n' : ''}250 SIZE 1073741824\r\n`;
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  socket.write(`220 ${o.name} ESMTP\r\n`);
  let lastChunk = false;
  const taken = () => {
    o.delivered?.();
    socket.write('250 2.0.0 Ok: sunk\r\n');
  };
  const read = smtpReader({
    command(line) {
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') socket.write(ehlo);
      else if (verb === 'BDAT') {
        lastChunk = / LAST\s*$/i.test(line);
        return Number(line.split(' ')[1]) || 0;
      } else if (verb === 'DATA') {
        socket.write('354 End data with <CR><LF>.<CR><LF>\r\n');
        return 'data';
      } else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
      else socket.write('250 2.0.0 Ok\r\n');
      return undefined;
    },
    endOfData: taken,
    endOfChunk: () => (lastChunk ? taken() : socket.write('250 2.0.0 Ok: chunk\r\n')),
  });
  socket.on('data', read);
}
