// smtp-server derives the enhanced status code of a handler error from its numeric code alone (553 is
// always 5.1.3), so "553 5.7.1" cannot be said through its API. Our replies carry their own enhanced code
// at the start of the text (see errors.ts); for those, and only those, the derived code is left out.
import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

const ENHANCED_PREFIX = /^[245]\.\d{1,3}\.\d{1,3} /;
const PATCHED = Symbol.for('tenant-relay.reply-codes');

type Send = (code: number, data: unknown, context?: unknown) => void;
const proto = SMTPConnection.prototype as unknown as { send: Send; [PATCHED]?: true };

if (!proto[PATCHED]) {
  const send = proto.send;
  proto.send = function (this: unknown, code, data, context) {
    const ownCode = typeof data === 'string' && ENHANCED_PREFIX.test(data);
    send.call(this, code, data, ownCode ? false : context);
  };
  proto[PATCHED] = true;
}
