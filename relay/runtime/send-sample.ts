// A realistic sample through this relay's own listener, as an app would send it, marked with a send-test
// token so its outcome is kept (observe/send-tests.ts): what `tenant-relay send-test` and the mail
// console's "send a test" both do.
import { randomUUID } from 'node:crypto';
import nodemailer from 'nodemailer';
import type { Config, Tenant } from '../../config/types.js';
import { SEND_TEST_HEADER } from '../observe/send-tests.js';
import { sample, type SampleKind } from '../ops/samples.js';

export type SampleSent = { readonly ok: true; readonly token: string; readonly reply: string } | { readonly ok: false; readonly error: string };

/** The sender a tenant's sample goes out as: the address asked for, else its first address, else noreply@ its first domain. */
export function sampleSender(tenant: Tenant, asked?: string): string | undefined {
  const domain = tenant.match.domains.find((d) => !d.startsWith('*.'));
  return asked ?? tenant.match.addresses[0] ?? (domain ? `noreply@${domain}` : undefined);
}

/** `port`: where the first listener is bound, when the config asked for port 0. */
export async function sendSample(config: Config, o: { tenant: Tenant; from: string; to: string; kind: SampleKind; auth?: { user: string; pass: string }; port?: number }): Promise<SampleSent> {
  const listener = config.listen[0];
  if (!listener) return { ok: false, error: 'the relay has no listener' };
  const host = listener.host === '0.0.0.0' || listener.host === '::' ? '127.0.0.1' : listener.host;
  const token = randomUUID();
  const transport = nodemailer.createTransport({
    host,
    port: o.port ?? listener.port,
    secure: listener.tls === 'implicit',
    requireTLS: listener.tls === 'starttls',
    ignoreTLS: listener.tls === 'none',
    ...(o.auth ? { auth: o.auth } : {}),
  });
  try {
    const info = await transport.sendMail({ from: o.from, to: o.to, ...sample(o.kind, o.tenant.id), headers: { [SEND_TEST_HEADER]: token } });
    return { ok: true, token, reply: info.response };
  } catch (err) {
    return { ok: false, error: (err as { response?: string }).response ?? (err as Error).message };
  } finally {
    transport.close();
  }
}
