// Two protocol rules smtp-server does not enforce, checked on its connection and parser:
// - RFC 2920: DATA ends a pipelined group; the message may only follow the 354. A client that sends it
//   before (in the same packet as DATA, or queued right behind it) is what smuggling and spam tools do,
//   and what Postfix refuses with smtpd_forbid_unauth_pipelining. smtp-server would take the early bytes
//   as message data, so the relay checks at the moment it is about to say 354 and closes instead.
// - Source routes (<@relay:user@host>): smtp-server strips them, as RFC 5321 allows, before any handler
//   sees the address. Nothing legitimate sends them any more; they are refused before that happens.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';
import { SMTPStream } from 'smtp-server/lib/smtp-stream';
import { Replies } from '../errors.js';

const PATCHED = Symbol.for('tenant-relay.pipelining-guard');
/** The command-mode chunk the parser is working through, kept so the 354 can look past the DATA line. */
const CHUNK = Symbol('chunk');

type Send = (code: number, data: unknown, context?: unknown) => void;
type OnCommand = (command: Buffer, callback: () => void) => void;
interface Connection {
  _parser?: { [CHUNK]?: Buffer; writableLength: number };
  _socket?: { readableLength: number };
  close(): void;
}

const streamProto = SMTPStream.prototype as unknown as { _write: (chunk: Buffer, enc: string, done: () => void) => void; [PATCHED]?: true };
const connectionProto = SMTPConnection.prototype as unknown as { send: Send; _onCommand: OnCommand; [PATCHED]?: true };
const SOURCE_ROUTE = /^(MAIL FROM|RCPT TO)\s*:\s*<\s*@/i;

if (!streamProto[PATCHED]) {
  const write = streamProto._write;
  streamProto._write = function (this: { [CHUNK]?: Buffer }, chunk, enc, done) {
    this[CHUNK] = chunk;
    write.call(this, chunk, enc, done);
  };
  streamProto[PATCHED] = true;
}

if (!connectionProto[PATCHED]) {
  const send = connectionProto.send;
  connectionProto.send = function (this: Connection, code, data, context) {
    if (code === 354 && sentEarly(this)) {
      const r = Replies.improperPipelining;
      send.call(this, r.code, `${r.enhanced} ${r.text}`, false);
      this.close();
      return;
    }
    send.call(this, code, data, context);
  };
  const onCommand = connectionProto._onCommand;
  connectionProto._onCommand = function (this: { send: Send }, command, callback) {
    if (SOURCE_ROUTE.test(command.toString('latin1'))) {
      const r = Replies.sourceRoute;
      this.send(r.code, `${r.enhanced} ${r.text}`);
      return callback();
    }
    onCommand.call(this, command, callback);
  };
  connectionProto[PATCHED] = true;
}

function sentEarly(connection: Connection): boolean {
  const current = connection._parser?.[CHUNK];
  // Bytes already waiting behind the chunk being parsed, in the socket or in the parser's queue (whose
  // length counts the chunk in hand too).
  const queued = (connection._parser?.writableLength ?? 0) - (current?.length ?? 0);
  if ((connection._socket?.readableLength ?? 0) > 0 || queued > 0) return true;
  const chunk = current?.toString('latin1') ?? '';
  // The DATA line is the last command this chunk had for the parser; anything after it came early.
  const m = /(?:^|\n)DATA[ \t]*\r?\n/gi;
  let end = -1;
  for (let hit = m.exec(chunk); hit; hit = m.exec(chunk)) end = hit.index + hit[0].length;
  return end !== -1 && end < chunk.length;
}
