// The domain names a certificate is for (its DNS subjectAltNames, else its subject's CN), and who may use
// an installed client certificate: an Exchange Online connector knows a sender by the domain in its
// certificate, so a certificate is a tenant's identity like its DKIM key, and never another tenant's.
import { X509Certificate } from 'node:crypto';
import { ownsDomain } from './ownership.js';
import type { ClientCertificate, Tenant } from './types.js';

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
