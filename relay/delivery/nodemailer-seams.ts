// The one place where the relay uses nodemailer past its documented API, pinned to the version it was
// written against (package.json names it exactly) and checked at start. nodemailer's SMTPConnection is
// used only by preflight; messages and capability probes go through the relay's own client
// (smtp-client.ts).
//
// The socket under a connection, for the TLS version and certificate that preflight reports. It acts
// only on connections the relay created. Upgrading nodemailer: re-run the preflight tests, then move the pin.
import { createRequire } from 'node:module';
import type { TLSSocket } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';

/** The version the seams below were written against. */
export const NODEMAILER_VERSION = '10.6.0';

/** Throws, naming the versions, when the installed nodemailer is not the one these seams fit. */
export function checkNodemailerSeams(): void {
  const installed = (createRequire(import.meta.url)('nodemailer/package.json') as { version: string }).version;
  const connection = new SMTPConnection({}) as unknown as Record<string, unknown>;
  const missing = [!('_socket' in connection) && 'SMTPConnection._socket'].filter(Boolean);
  if (installed !== NODEMAILER_VERSION || missing.length > 0) {
    throw new Error(
      `tenant-relay needs nodemailer ${NODEMAILER_VERSION} (relay/delivery/nodemailer-seams.ts), found ${installed}${missing.length ? `; missing: ${missing.join(', ')}` : ''}`,
    );
  }
}

/** The TLS socket under a connection, when TLS was negotiated. */
export function tlsSocketOf(connection: SMTPConnection): Partial<TLSSocket> | undefined {
  return (connection as unknown as { _socket?: Partial<TLSSocket> })._socket || undefined;
}
