// smtp-server derives the enhanced status code of a handler error from its numeric code alone (553 is
// always 5.1.3), so "553 5.7.1" cannot be said through its API. Our replies carry their own enhanced code
// at the start of the text (see errors.ts); for those, and only those, the derived code is left out.
// Also: an over-long command line stops smtp-server's parser for good, and it says 421; RFC 5321 4.2.4
// names 500 for "line too long", so that is what the client hears before the connection closes.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;
const PATCHED = Symbol.for('tenant-relay.reply-codes');

type Send = (code: number, data: unknown, context?: unknown) => void;
const proto = SMTPConnection.prototype as unknown as { send: Send; close(): void; [PATCHED]?: true };

if (!proto[PATCHED]) {
  const send = proto.send;
  proto.send = function (this: { close(): void }, code, data, context) {
    if (code === 421 && data === 'Error: Command line too long') {
      send.call(this, 500, '5.5.2 Line too long: a command line may have at most 512 octets', false);
      this.close();
      return;
    }
    const ownCode = typeof data === 'string' && ENHANCED_PREFIX.test(data);
    send.call(this, code, data, ownCode ? false : context);
  };
  proto[PATCHED] = true;
}
