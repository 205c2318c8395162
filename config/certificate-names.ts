// The domain names a certificate is for (its DNS subjectAltNames, else its subject's CN), and who may use
// an installed client certificate: an Exchange Online connector knows a sender by the domain in its
// certificate, so a certificate is a tenant's identity like its DKIM key, and never another tenant's.
import { X509Certificate } from 'node:crypto';
import { ownsDomain } from './ownership.js';
import type { ClientCertificate, Config, Tenant } from './types.js';

export function certificateNames(pem: string): string[] {
  const cert = new X509Certificate(pem);
  const sans = (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  if (sans.length > 0) return sans;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/**
 * The tenant may present this installed certificate: it is listed in the certificate's `tenants`, or (with
 * no list) one of the certificate's names is a domain it owns.
 */
export function mayPresent(certificate: ClientCertificate, tenant: Pick<Tenant, 'id' | 'match' | 'identity'>): boolean {
  if (certificate.tenants) return certificate.tenants.includes(tenant.id) || certificate.tenants.includes('*');
  return certificateNames(certificate.cert).some((name) => !name.startsWith('*.') && ownsDomain(tenant, name));
}

/** What preflight says of a client certificate: who it names, who it is for, how long it is valid. */
export interface CertificateFacts {
  readonly label: string;
  readonly subject: string;
  readonly names: readonly string[];
  readonly expires: string;
  readonly daysLeft: number;
  /** The first of its names that is a domain of a tenant using it (null: none, so a connector will not match). */
  readonly tenantDomain: string | null;
}

export function certificateFacts(certificate: ClientCertificate, tenants: readonly Pick<Tenant, 'match' | 'identity'>[], now: number): CertificateFacts {
  const cert = new X509Certificate(certificate.cert);
  const names = certificateNames(certificate.cert);
  const expires = new Date(cert.validTo);
  return {
    label: certificate.label,
    subject: cert.subject.replaceAll('\n', ', '),
    names,
    expires: expires.toISOString(),
    daysLeft: Math.floor((expires.getTime() - now) / 86_400_000),
    tenantDomain: names.find((n) => tenants.some((t) => ownsDomain(t, n))) ?? null,
  };
}

/** When each client certificate of a snapshot expires (seconds since the epoch), by its label: for the metric and its alert. */
export function clientCertificateExpiries(config: Config): Map<string, number> {
  const expiries = new Map<string, number>();
  for (const c of certificatesOf(config)) if (!expiries.has(c.label)) expiries.set(c.label, expiryOf(c));
  return expiries;
}

/** Certificates are frozen per snapshot: each is parsed once, not at every scrape. */
const expiryCache = new WeakMap<ClientCertificate, number>();
function expiryOf(c: ClientCertificate): number {
  let at = expiryCache.get(c);
  if (at === undefined) expiryCache.set(c, (at = Math.floor(new Date(new X509Certificate(c.cert).validTo).getTime() / 1000)));
  return at;
}

/** Every client certificate a snapshot may present: its upstreams' own and the installed ones. */
export function certificatesOf(config: Config): ClientCertificate[] {
  const upstreams = [config.smarthost, ...config.tenants.map((t) => t.upstream)];
  return [...upstreams.map((u) => (u?.kind === 'smtp' ? u.clientCertificate : undefined)), ...config.clientCertificates.values()].filter((c): c is ClientCertificate => c !== undefined);
}
