// A tenant record answered by the platform's HTTP tenant source, checked with the same schema and rules
// as a YAML tenant, plus what a record from the network may not do: read the relay's local files (a CA
// path, a maildir) or take over a tenant the YAML defines.
import { buildTenant, buildTenantUpstream } from './build.js';
import { TenantDirectory, domainOf } from './directory.js';
import { type RawUpstream, tenantSchema } from './schema.js';
import type { ClientCertificate, Config, SmtpUpstream, Tenant, UpstreamHostPolicy } from './types.js';
import { claimsAddress } from './ownership.js';
import { checkCertificateName, checkTenant, checkUpstream, checkUpstreamPort, type PathIssue } from './validate.js';

/** What the record was asked for: it must claim that key, or the platform answered another question. */
export type TenantQuery = { readonly by: 'auth' | 'sender' | 'id'; readonly value: string };

export type RecordCheck = { readonly ok: true; readonly tenant: Tenant } | { readonly ok: false; readonly problems: readonly string[] };

/** Problems name keys and rules, never values: a record carries passwords and keys. */
export function parseTenantRecord(json: unknown, query: TenantQuery, config: Config, hostPolicy: UpstreamHostPolicy): RecordCheck {
  const parsed = tenantSchema.safeParse(json);
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(record)'}: ${i.code === 'unrecognized_keys' ? `unknown key ${i.keys.join(', ')}` : i.message}`) };
  }
  const raw = parsed.data;
  const issues: PathIssue[] = [];
  if (raw.upstream?.kind === 'maildir') issues.push({ path: ['upstream', 'kind'], message: 'maildir is only for upstreams in the config files' });
  if (raw.upstream?.kind === 'smtp' && raw.upstream.ca !== undefined) issues.push({ path: ['upstream', 'ca'], message: 'is a local file path, only for the config files' });
  if (raw.upstream?.kind === 'smtp' && raw.upstream.auth?.kind === 'oauth2' && raw.upstream.auth.ca !== undefined) {
    issues.push({ path: ['upstream', 'auth', 'ca'], message: 'is a local file path, only for the config files' });
  }
  // A webhook URL from the network would have the relay post tenants' mail facts wherever a record says.
  if (raw.events !== undefined) issues.push({ path: ['events'], message: 'is only for tenants in the config files' });
  // Smarthost fallback sends a tenant's mail under the platform's identity: the operator's call, in the files.
  if (raw.delivery.fallbackToSmarthostAfterMinutes !== undefined) issues.push({ path: ['delivery', 'fallbackToSmarthostAfterMinutes'], message: 'is only for tenants in the config files' });
  // Its share of the shared spool is the operator's to give.
  if (raw.delivery.spool !== undefined) issues.push({ path: ['delivery', 'spool'], message: 'is only for tenants in the config files' });
  if (raw.upstream) {
    checkUpstream(raw.upstream, ['upstream'], issues);
    checkRecordCertificate(raw.upstream, ['upstream'], config.clientCertificates, issues);
  }
  checkTenant(raw, [], issues, { platformKey: config.dkim.privateKey !== undefined, hostPolicy });
  if (config.directory.byId(raw.id)) issues.push({ path: ['id'], message: `"${raw.id}" is a tenant of the config files` });
  // What a record claims decides what the relay signs and sends as for it: never a key the files claim.
  raw.match.addresses.forEach((a, i) => {
    if (config.directory.byAddress(a) || config.directory.byDomain(domainOf(a))) issues.push({ path: ['match', 'addresses', i], message: 'is claimed by a tenant of the config files' });
  });
  raw.match.domains.forEach((d, i) => {
    const domain = d.startsWith('*.') ? d.slice(2) : d;
    if (config.directory.byDomain(domain) || (d.startsWith('*.') && yamlClaimsUnder(config, domain))) issues.push({ path: ['match', 'domains', i], message: 'is claimed by a tenant of the config files' });
  });
  const tenant = buildTenant(raw, [], issues, { sharedKey: config.limits.redis?.signingKey, certificates: config.clientCertificates, hostPolicy });
  if (issues.length === 0 && !claims(tenant, query)) issues.push({ path: ['match'], message: `does not claim the ${query.by} that was looked up` });
  // Its From must be one it claims: else a record could have its mail signed and shown as anyone.
  if (tenant.identity.from !== undefined && !claimsAddress(tenant, tenant.identity.from)) {
    issues.push({ path: ['identity', 'from'], message: 'is not an address the record claims (its match.addresses or match.domains)' });
  }
  if (issues.length > 0) return { ok: false, problems: issues.map((i) => `${i.path.join('.')}: ${i.message}`) };
  return { ok: true, tenant };
}

/** A YAML tenant claims `domain` itself or something under it (a record's `*.domain` would cover it). */
function yamlClaimsUnder(config: Config, domain: string): boolean {
  const suffix = `.${domain.toLowerCase()}`;
  return config.tenants.some((t) => t.match.domains.some((d) => (d.startsWith('*.') ? d.slice(1) : `.${d}`).toLowerCase().endsWith(suffix)) || t.match.addresses.some((a) => `.${domainOf(a)}`.endsWith(suffix)));
}

function claims(tenant: Tenant, query: TenantQuery): boolean {
  if (query.by === 'id') return tenant.id === query.value;
  const own = new TenantDirectory([tenant]);
  if (query.by === 'auth') return own.byAuthUser(query.value) !== undefined;
  return own.byAddress(query.value) !== undefined || own.byDomain(domainOf(query.value)) !== undefined;
}

export type UpstreamCheck = { readonly ok: true; readonly upstream: SmtpUpstream } | { readonly ok: false; readonly problems: readonly string[] };

/**
 * A candidate upstream a tenant admin typed in (the platform asks before it saves): the keys of a tenant's
 * `upstream`, checked like one from the platform's records (no maildir, no local file), held to `hostPolicy`.
 */
export function parseUpstreamRecord(json: unknown, name: string, hostPolicy: UpstreamHostPolicy, certificates: ReadonlyMap<string, ClientCertificate>): UpstreamCheck {
  const parsed = tenantSchema.shape.upstream.safeParse(json);
  if (!parsed.success || !parsed.data) {
    const issues = parsed.success ? [] : parsed.error.issues;
    return { ok: false, problems: issues.length ? issues.map((i) => `${i.path.map(String).join('.') || '(upstream)'}: ${i.code === 'unrecognized_keys' ? `unknown key ${i.keys.join(', ')}` : i.message}`) : ['(upstream): is required'] };
  }
  const raw = parsed.data;
  const issues: PathIssue[] = [];
  if (raw.kind === 'maildir') issues.push({ path: ['kind'], message: 'maildir is only for upstreams in the config files' });
  if (raw.kind === 'smtp' && (raw.ca !== undefined || (raw.auth?.kind === 'oauth2' && raw.auth.ca !== undefined))) issues.push({ path: ['ca'], message: 'is a local file path, only for the config files' });
  checkUpstream(raw, [], issues);
  checkRecordCertificate(raw, [], certificates, issues);
  // Whose candidate it is, the relay cannot tell: only a certificate any tenant may present is tried.
  const named = raw.kind === 'smtp' && typeof raw.tls === 'object' ? raw.tls.clientCertificateName : undefined;
  const certificate = named === undefined ? undefined : certificates.get(named);
  if (certificate && !certificate.tenants?.includes('*')) issues.push({ path: ['tls', 'clientCertificateName'], message: 'a candidate may name only a certificate any tenant may present (tenants: ["*"]); check a tenant\'s own with its record or tenant-relay preflight --tenant' });
  checkUpstreamPort(raw, hostPolicy, ['port'], issues);
  const upstream = issues.length === 0 ? buildTenantUpstream(raw, name, issues, hostPolicy, certificates) : undefined;
  if (issues.length > 0 || !upstream || upstream.kind !== 'smtp') return { ok: false, problems: issues.map((i) => `${i.path.join('.') || '(upstream)'}: ${i.message}`) };
  return { ok: true, upstream };
}

/** A record names an installed client certificate; it never carries one (a key, or a path on this machine). */
function checkRecordCertificate(u: RawUpstream, at: string[], certificates: ReadonlyMap<string, ClientCertificate>, issues: PathIssue[]): void {
  if (u.kind === 'smtp' && typeof u.tls === 'object' && (u.tls.clientCertificate !== undefined || u.tls.clientKey !== undefined)) {
    issues.push({ path: [...at, 'tls'], message: 'clientCertificate and clientKey are local files, only for the config files; name an installed certificate with clientCertificateName' });
  }
  checkCertificateName(u, at, (name) => certificates.has(name), issues);
}
