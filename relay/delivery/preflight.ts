// `tenant-relay preflight`: for each upstream, connect, negotiate TLS as configured, try AUTH (no mail is
// sent), and report what an admin needs before going live: reachable, TLS version, certificate expiry,
// AUTH accepted.
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SmtpUpstream } from '../../config/types.js';
import { tlsSocketOf } from './nodemailer-seams.js';
import { transportOptions } from './pools.js';

export interface PreflightReport {
  readonly upstream: string;
  readonly address: string;
  readonly tls: SmtpUpstream['tls'];
  readonly reachable: boolean;
  readonly tlsVersion?: string;
  readonly certificateExpires?: string;
  readonly certificateDaysLeft?: number;
  readonly auth: 'ok' | 'refused' | 'not configured' | 'not tried';
  readonly error?: string;
  readonly ok: boolean;
}

export async function preflight(upstream: SmtpUpstream, heloName: string, now = Date.now()): Promise<PreflightReport> {
  const { pool: _pool, maxConnections: _max, maxMessages: _msgs, auth: _auth, ...options } = transportOptions(upstream, heloName);
  const base = { upstream: upstream.name, address: `${upstream.host}:${upstream.port}`, tls: upstream.tls };
  const connection = new SMTPConnection(options);
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once('error', reject);
      connection.connect(() => resolve());
    });
  } catch (err) {
    connection.close();
    return { ...base, reachable: false, auth: 'not tried', error: (err as Error).message, ok: false };
  }
  const socket = tlsSocketOf(connection);
  const protocol = socket?.getProtocol?.() ?? undefined;
  const validTo = socket?.getPeerCertificate?.()?.valid_to;
  const expires = validTo ? new Date(validTo) : undefined;
  const tlsFacts = {
    ...(protocol ? { tlsVersion: protocol } : {}),
    ...(expires ? { certificateExpires: expires.toISOString(), certificateDaysLeft: Math.floor((expires.getTime() - now) / 86_400_000) } : {}),
  };
  if (!upstream.auth) {
    connection.quit();
    return { ...base, reachable: true, ...tlsFacts, auth: 'not configured', ok: true };
  }
  const auth = upstream.auth;
  const error = await new Promise<string | undefined>((resolve) => {
    connection.login({ user: auth.user, pass: auth.pass }, (err) => resolve(err ? err.message : undefined));
  });
  connection.quit();
  return { ...base, reachable: true, ...tlsFacts, auth: error ? 'refused' : 'ok', ...(error ? { error } : {}), ok: !error };
}
