// The floor of a relay in Node on this machine: the least a store-and-forward SMTP relay that keeps the
// relay's guarantees does per message, written with nothing but node:net and node:fs. The client's 250
// comes after its message is on disk (written to a journal file grown ahead by zeros, fsynced in the
// thread pool, shared by the messages that arrive together, as relay/queue/journal.ts does); the message
// then goes to the upstream over pooled connections: to one that offers CHUNKING, envelope and BDAT LAST
// with the message in one write (as the relay's client sends a small message); to one that does not,
// envelope and DATA pipelined in one write, body and final dot in another. A done marker is written
// after the upstream's 250. No tenancy, header rewrite, checks, logs, trace, metrics or events: what the
// relay spends over this is what those cost, plus its libraries. Run by run.ts beside the relay (`node floor-relay.js <sink port> <dir> [layers]`), never by
// the relay.
//
// `layers` puts back the relay's libraries one at a time, as the relay uses them, to show what each costs
// over the floor (bench/floor.ts): `inbound` receives with the relay's SMTP layer (relay/inbound/smtp)
// instead of the bare parser below; `client` sends with the relay's own sendViaSmtp
// (its SMTP client and pool, and the result's classification) instead of the bare client.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseConfig } from '../config/load.js';
import { dotStuff } from '../relay/delivery/dot-stuffing.js';
import { UpstreamPools } from '../relay/delivery/pools.js';
import { sendViaSmtp } from '../relay/delivery/smtp.js';
import { Replies } from '../relay/errors.js';
import { SmtpListener } from '../relay/inbound/smtp/listener.js';
import { smtpReader } from './smtp-reader.js';

const sinkPort = Number(process.argv[2]);
const dir = process.argv[3] ?? '';
const layers = new Set((process.argv[4] ?? '').split(',').filter(Boolean));
const HOST = 'floor.relay.localhost';
const DOT_END = Buffer.from('.\r\n');
const SEGMENT_BYTES = 64 * 1024 * 1024;
const MAX_UPSTREAM_CONNECTIONS = 50;

/** The journal: one file, zeros ahead, each batch one writev on the main thread and one fsync in the pool. */
const journal = fs.openSync(path.join(dir, 'journal'), 'w+', 0o600);
fs.writeSync(journal, Buffer.alloc(SEGMENT_BYTES));
fs.fsyncSync(journal);
let position = 0;
let waiting: { chunks: Buffer[]; done: () => void }[] = [];
let syncing = false;

function commit(chunks: Buffer[], done: () => void): void {
  waiting.push({ chunks, done });
  if (!syncing) writeBatch();
}

function writeBatch(): void {
  const batch = waiting;
  waiting = [];
  const chunks = batch.flatMap((m) => m.chunks);
  const length = chunks.reduce((n, c) => n + c.length, 0);
  if (position + length > SEGMENT_BYTES) position = 0;
  fs.writevSync(journal, chunks, position);
  position += length;
  syncing = true;
  fs.fsync(journal, (err) => {
    if (err) throw err;
    syncing = false;
    for (const m of batch) m.done();
    if (waiting.length > 0) writeBatch();
  });
}

function markDone(id: string): void {
  const marker = Buffer.from(`D${id}\n`);
  if (position + marker.length > SEGMENT_BYTES) position = 0;
  fs.writeSync(journal, marker, 0, marker.length, position);
  position += marker.length;
}

interface Job {
  readonly id: string;
  readonly from: string;
  readonly to: readonly string[];
  readonly body: readonly Buffer[];
}

/** Messages on disk, waiting for an upstream connection. */
const queue: Job[] = [];
const idle: Upstream[] = [];
let upstreams = 0;

const dispatch = layers.has('client') ? relayClientDispatch() : bareClientDispatch;

/** Through the relay's delivery code: its SMTP client's pool for the upstream, at most 100 sends at once (as the bench's relay). */
function relayClientDispatch(): () => void {
  const upstream = parseConfig(`smarthost: { host: 127.0.0.1, port: ${sinkPort}, tls: none, maxConnections: ${MAX_UPSTREAM_CONNECTIONS} }\n`, 'floor.yaml', {}).smarthost;
  if (upstream.kind !== 'smtp') throw new Error('the floor relay needs an SMTP upstream');
  const pools = new UpstreamPools(HOST);
  let sending = 0;
  const next = (): void => {
    while (queue.length > 0 && sending < 100) {
      const job = queue.shift() as Job;
      sending++;
      void sendViaSmtp(pools, upstream, { mailFrom: job.from, rcptTo: job.to }, job.body).then((result) => {
        sending--;
        if (result.outcomes.every((o) => o.status === 'sent')) markDone(job.id);
        else process.stderr.write(`floor relay: ${JSON.stringify(result.outcomes[0])}\n`);
        next();
      });
    }
  };
  return next;
}

function bareClientDispatch(): void {
  while (queue.length > 0) {
    const connection = idle.pop();
    if (connection) connection.send(queue.shift() as Job);
    else {
      if (upstreams < MAX_UPSTREAM_CONNECTIONS) {
        upstreams++;
        new Upstream();
      }
      return;
    }
  }
}

/** One pooled connection to the upstream: EHLO once, then one transaction at a time. */
class Upstream {
  readonly #socket = net.connect(sinkPort, '127.0.0.1');
  #text = '';
  /** Reply lines still expected before `#then` runs, and the final lines read so far. */
  #expected = 1;
  #replies: string[] = [];
  /** The upstream offered CHUNKING in its EHLO reply. */
  #chunking = false;
  #then: (replies: string[]) => void = () => {
    this.#expect(1, () => this.#ready());
    this.#socket.write(`EHLO ${HOST}\r\n`);
  };
  #job: Job | undefined;
  #closed = false;

  constructor() {
    this.#socket.setNoDelay(true);
    this.#socket.on('data', (chunk: Buffer) => this.#read(chunk));
    this.#socket.on('error', (err) => this.#lost(err));
    this.#socket.on('close', () => this.#lost(new Error('upstream closed')));
  }

  send(job: Job): void {
    this.#job = job;
    const envelope = `MAIL FROM:<${job.from}>\r\n${job.to.map((to) => `RCPT TO:<${to}>\r\n`).join('')}`;
    if (this.#chunking) {
      const size = job.body.reduce((n, b) => n + b.length, 0);
      this.#expect(job.to.length + 2, (replies) => {
        if (!replies.every((r) => r.startsWith('250'))) return this.#lost(new Error(`upstream refused: ${replies.join(' | ')}`));
        this.#delivered(job);
      });
      // One copy, as the relay's client makes: the command and the message's chunks joined once.
      this.#socket.write(Buffer.concat([Buffer.from(`${envelope}BDAT ${size} LAST\r\n`, 'latin1'), ...job.body]));
      return;
    }
    this.#expect(job.to.length + 2, (replies) => {
      if (!replies.every((r, i) => r.startsWith(i === replies.length - 1 ? '354' : '250'))) return this.#lost(new Error(`upstream refused: ${replies.join(' | ')}`));
      this.#expect(1, (done) => {
        if (!done[0]?.startsWith('250')) return this.#lost(new Error(`upstream refused: ${done[0]}`));
        this.#delivered(job);
      });
      this.#socket.write(Buffer.concat([...dotStuffed(job.body), DOT_END]));
    });
    this.#socket.write(`${envelope}DATA\r\n`);
  }

  #delivered(job: Job): void {
    markDone(job.id);
    this.#job = undefined;
    this.#ready();
  }

  #ready(): void {
    idle.push(this);
    dispatch();
  }

  #expect(replies: number, then: (replies: string[]) => void): void {
    this.#expected = replies;
    this.#replies = [];
    this.#then = then;
  }

  #read(chunk: Buffer): void {
    this.#text += chunk.toString('latin1');
    let nl: number;
    while ((nl = this.#text.indexOf('\n')) !== -1) {
      const line = this.#text.slice(0, nl + 1);
      this.#text = this.#text.slice(nl + 1);
      if (/^250[- ]CHUNKING\s*$/i.test(line)) this.#chunking = true;
      // A multi-line reply's last line has a space after the code.
      if (line[3] === '-') continue;
      this.#replies.push(line.trimEnd());
      if (this.#replies.length === this.#expected) this.#then(this.#replies);
    }
  }

  #lost(err: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    process.stderr.write(`floor relay: ${err.message}\n`);
    this.#socket.destroy();
    const at = idle.indexOf(this);
    if (at !== -1) idle.splice(at, 1);
    if (this.#job) queue.unshift(this.#job);
    this.#job = undefined;
    upstreams--;
    setTimeout(dispatch, 100);
  }
}

/** The message as it goes between 354 and the final dot: the relay's own dot-stuffing, chunk by chunk. */
function dotStuffed(chunks: readonly Buffer[]): Buffer[] {
  let last: number | false = false;
  return chunks.map((chunk) => {
    const out = dotStuff(chunk, last);
    if (chunk.length > 0) last = chunk[chunk.length - 1] as number;
    return out;
  });
}

/** A line starting with a dot came with another (RFC 5321 4.5.2); the relay keeps the message without them. */
function dotUnstuffed(chunks: readonly Buffer[]): readonly Buffer[] {
  return hasDotLine(chunks) ? [Buffer.from(Buffer.concat(chunks).toString('latin1').replace(/(^|\n)\.\./g, '$1.'), 'latin1')] : chunks;
}

/** Whether a line of the message begins with a dot (rare: the common case keeps the chunks as they are). */
function hasDotLine(chunks: readonly Buffer[]): boolean {
  let lineStart = true;
  for (const chunk of chunks) {
    if (chunk.length === 0) continue;
    if ((lineStart && chunk[0] === 0x2e) || chunk.includes('\n.')) return true;
    lineStart = chunk[chunk.length - 1] === 0x0a;
  }
  return false;
}

let sequence = 0;

/** A received message: on disk (with its envelope), then the client hears 250 and the upstream gets it. */
function received(from: string, to: string[], helo: string, peer: string, body: readonly Buffer[], answer: (id: string) => void): void {
  const id = `floor${(++sequence).toString(36)}`;
  const trace = Buffer.from(`Received: from ${helo} ([${peer}])\r\n\tby ${HOST} with ESMTP id ${id}\r\n\tfor <${to[0]}>; ${new Date().toUTCString()}\r\n`, 'latin1');
  const job: Job = { id, from, to, body: [trace, ...body] };
  commit([Buffer.from(`M${JSON.stringify({ id, from, to })}\n`), ...job.body], () => {
    answer(id);
    queue.push(job);
    dispatch();
  });
}

const listen = (port: number, host: string, done: (port: number) => void) => {
  if (layers.has('inbound')) void relayServer().listen({ port, host }).then((bound) => done(bound.port));
  else {
    const server = bareServer();
    server.listen(port, host, () => done((server.address() as net.AddressInfo).port));
  }
};

/** The relay's SMTP layer, as relay/inbound/server.ts sets it up for a plaintext listener with no AUTH. */
function relayServer(): SmtpListener {
  return new SmtpListener(
    {
      name: HOST,
      tls: 'none',
      auth: 'never',
      limits: { size: 67_108_864, maxClients: 5000, maxRecipients: 1000, idleTimeoutMs: 60_000 },
      greetingDelayMs: () => 0,
      reverse: (_ip, done) => done(null, []),
      onError: () => {},
      fault: () => {},
    },
    {
      connect: () => undefined,
      auth: () => Promise.reject(new Error('no AUTH here')),
      mailFrom: () => undefined,
      rcptTo: () => undefined,
      closed: () => {},
      data: (session, stream) =>
        new Promise((resolve) => {
          const body: Buffer[] = [];
          stream.on('data', (chunk: Buffer) => body.push(chunk));
          stream.on('end', () => {
            const from = session.envelope.mailFrom?.address ?? '';
            const to = session.envelope.rcptTo.map((r) => r.address);
            received(from, to, session.hostNameAppearsAs ?? '', session.remoteAddress, body, (id) => resolve({ reply: Replies.queued(id) }));
          });
        }),
    },
  );
}

function bareServer(): net.Server {
  return net.createServer((socket) => {
    socket.setNoDelay(true);
    // The client's address goes into the Received line, as a relay's does.
    const peer = socket.remoteAddress ?? '';
    let helo = '';
    let from = '';
    let to: string[] = [];
    let body: Buffer[] = [];
    const reply = (text: string) => socket.write(text);
    reply(`220 ${HOST} ESMTP floor\r\n`);
    const read = smtpReader({
      command(line) {
        const command = line.trimEnd();
        const verb = command.slice(0, 4).toUpperCase();
        const address = () => /<([^>]*)>/.exec(command)?.[1] ?? '';
        if (verb === 'EHLO' || verb === 'HELO') {
          helo = command.slice(5).trim();
          reply(`250-${HOST}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 67108864\r\n`);
        } else if (verb === 'MAIL') {
          from = address();
          to = [];
          reply('250 2.1.0 Ok\r\n');
        } else if (verb === 'RCPT') {
          to.push(address());
          reply('250 2.1.5 Ok\r\n');
        } else if (verb === 'DATA') {
          if (to.length === 0) reply('503 5.5.1 Error: need RCPT command\r\n');
          else {
            reply('354 End data with <CR><LF>.<CR><LF>\r\n');
            return 'data';
          }
        } else if (verb === 'RSET') {
          from = '';
          to = [];
          reply('250 2.0.0 Ok\r\n');
        } else if (verb === 'QUIT') {
          // As the relay does: closed once the 221 is written, not half-closed.
          socket.write('221 2.0.0 Bye\r\n', () => socket.destroy());
        } else reply('502 5.5.2 Error: command not recognized\r\n');
        return undefined;
      },
      body: (bytes) => body.push(bytes),
      endOfData() {
        received(from, to, helo, peer, dotUnstuffed(body), (id) => {
          if (!socket.destroyed) reply(`250 2.0.0 Ok: queued as ${id}\r\n`);
        });
        from = '';
        to = [];
        body = [];
      },
    });
    socket.on('data', read);
    socket.on('error', () => socket.destroy());
  });
}

listen(0, '127.0.0.1', (port) => process.send?.({ port }));
process.on('message', (m: { type: string }) => {
  if (m.type === 'stop') process.exit(0);
});
// Never outlive the benchmark that started it.
process.on('disconnect', () => process.exit(0));
