// The listener for the bounce domain (bounces): the MX of that domain points here. It takes mail only
// for return paths the relay made (message/return-path.ts: their mac checks), so it is neither an open
// relay nor a way to forge a bounce for a message someone else sent; a report for any other address is
// refused at RCPT. Each report (a DSN or an abuse report, suppression/bounce-report.ts) is handed to
// `take` with the queue id its return path names; nothing is queued or forwarded. A stock smtp-server
// (none of inbound's adaptations): one short session per report, from other mail servers.
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { BounceSettings } from '../../config/types.js';
import { Replies } from '../errors.js';
import type { Logger } from '../log.js';
import { queueIdOfReturnPath } from '../message/return-path.js';
import { readBounceReport, type ReportedRecipient } from '../suppression/bounce-report.js';

/** A report is small: the notification and, at most, the headers of the message it is about. */
const MAX_REPORT_BYTES = 512 * 1024;

export interface BounceListenerDeps {
  readonly settings: () => BounceSettings | undefined;
  /** Links the report's recipients to the message `queueId` names; how many were linked. */
  take(queueId: string, reported: readonly ReportedRecipient[]): Promise<number>;
  readonly logger: Logger;
}

export async function startBounceListener(listen: { readonly host: string; readonly port: number }, deps: BounceListenerDeps): Promise<{ readonly port: number; close(): Promise<void> }> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    size: MAX_REPORT_BYTES,
    maxClients: 100,
    socketTimeout: 60_000,
    logger: false,
    onRcptTo(address, _session, callback) {
      const settings = deps.settings();
      const queueId = settings ? queueIdOfReturnPath(address.address, settings) : undefined;
      const refused = Replies.bounceAddressUnknown;
      if (!queueId) return callback(Object.assign(new Error(`${refused.enhanced} ${refused.text}`), { responseCode: refused.code }));
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_REPORT_BYTES) chunks.push(c);
      });
      stream.on('end', () => {
        const settings = deps.settings();
        const reported = readBounceReport(Buffer.concat(chunks));
        const ids = settings ? session.envelope.rcptTo.flatMap((r) => queueIdOfReturnPath(r.address, settings) ?? []) : [];
        Promise.all(ids.map((id) => deps.take(id, reported)))
          .then((linked) => {
            deps.logger.info({ event: 'bounce-report', messages: ids, recipients: reported.length, linked: linked.reduce((a, b) => a + b, 0) });
            callback(null, '2.0.0 Report taken');
          })
          .catch((err: Error) => callback(Object.assign(new Error(`4.3.0 ${err.message.slice(0, 100)}`), { responseCode: 451 })));
      });
    },
  });
  server.on('error', (err) => deps.logger.debug({ event: 'bounce-listener-error', err: err.message }));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  return { port: (server.server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}
