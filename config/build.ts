// Turns the checked raw values into the frozen snapshot: defaults that depend on other keys, files read,
// keys parsed, indexes built. The rules between keys are validate.ts's; the only problems found here are
// in what is read or parsed (an unreadable CA file, a private key that is not one), added by key path.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { deepFreeze, readCa, readClientCertificate } from './build-parts.js';
import { buildUpstream, type UpstreamContext } from './build-upstream.js';
import { mayPresent } from './certificate-names.js';
import { usableCores } from './cores.js';
import { OPS_SCOPES } from './vocabulary.js';
import { asciiDomain, TenantDirectory } from './directory.js';
import { isLoopbackHost } from './networks.js';
import type { RawConfig, RawTenant, RawTenantSource, RawUpstream } from './schema.js';
import type { ClientCertificate, Config, DeliveryPolicy, DkimPrivateKey, InboundUser, OpsToken, Tenant, TenantSourceSettings, Upstream, UpstreamHostPolicy } from './types.js';
import type { PathIssue } from './validate.js';

/** `firstFileTenant`: the index of the first tenant that came from a tenant file (the rest follow it). */
/** Where the snapshot came from: its main file, and the files its `${file:}` secrets were read from. */
export interface ConfigOrigin {
  readonly source: string;
  readonly secretFiles: readonly string[];
}

export function buildConfig(raw: RawConfig, { source, secretFiles }: ConfigOrigin, problems: PathIssue[], firstFileTenant = raw.tenants.length): Config {
  const platformKey = buildKey(raw.dkim, ['dkim'], problems);
  const sharedKey = raw.limits.store?.redis?.signingKey;
  const certificates = buildClientCertificates(raw.clientCertificates, problems);
  const fileHosts = deepFreeze(raw.tenantFileUpstreamHosts);
  const tenants = raw.tenants.map((t, i) => buildTenant(t, ['tenants', i], problems, { sharedKey, certificates, ...(i >= firstFileTenant ? { hostPolicy: fileHosts } : {}) }));
  const users = new Map<string, InboundUser>(raw.inbound.users.map((u) => [u.username, Object.freeze({ ...u })]));
  const { idleTimeoutSeconds, progressTimeoutSeconds, dataTimeoutSeconds, authFailureDelaySeconds, greetingDelaySeconds, reverseLookupTimeoutSeconds, allowUnauthenticatedFrom, users: _users, ...limits } =
    raw.inbound;
  const listen = raw.listen.map((l) => {
    return { ...l, ...(l.cert !== undefined ? { cert: path.resolve(l.cert) } : {}), ...(l.key !== undefined ? { key: path.resolve(l.key) } : {}) };
  });
  return Object.freeze({
    source,
    secretFiles: Object.freeze([...secretFiles]),
    hostname: raw.hostname,
    ops: buildOps(raw.ops),
    workers: raw.workers === 'auto' ? usableCores() : raw.workers,
    limits: buildLimitStore(raw.limits, problems),
    listen: deepFreeze(listen),
    maxMessageSizeBytes: raw.maxMessageSizeBytes,
    inbound: Object.freeze({
      ...limits,
      allowUnauthenticatedFrom: Object.freeze([...allowUnauthenticatedFrom]),
      users,
      idleTimeoutMs: idleTimeoutSeconds * 1000,
      progressTimeoutMs: progressTimeoutSeconds * 1000,
      dataTimeoutMs: dataTimeoutSeconds * 1000,
      authFailureDelayMs: authFailureDelaySeconds * 1000,
      greetingDelayMs: Math.round(greetingDelaySeconds * 1000),
      reverseLookupTimeoutMs: Math.round(reverseLookupTimeoutSeconds * 1000),
    }),
    identification: deepFreeze(raw.identification),
    smarthost: buildUpstream(raw.smarthost, 'smarthost', 'platform', ['smarthost'], problems, { sharedKey, certificates }),
    clientCertificates: certificates,
    upstreamHosts: deepFreeze(raw.upstreamHosts),
    delivery: buildDelivery(raw.delivery),
    message: deepFreeze(raw.message),
    dkim: deepFreeze({ ...withoutKey(raw.dkim), ...(platformKey ? { privateKey: platformKey } : {}) }),
    tenants: Object.freeze(tenants),
    directory: new TenantDirectory(tenants),
    tenantFiles: Object.freeze(raw.tenantFiles.map((f) => path.resolve(f))),
    ...(raw.tenantSource ? { tenantSource: buildTenantSource(raw.tenantSource, problems) } : {}),
    ...(raw.events.webhook ? { webhook: buildWebhook(raw.events.webhook, ['events', 'webhook'], problems) } : {}),
    providerEvents: buildProviderEvents(raw.providerEvents, problems),
    ...(raw.bounces ? { bounces: deepFreeze({ ...raw.bounces, domain: raw.bounces.domain.toLowerCase() }) } : {}),
    suppression: Object.freeze({ enabled: raw.suppression.enabled, expiryMs: Math.round(raw.suppression.expiryDays * 86_400_000), action: raw.suppression.action }),
    trace: Object.freeze({ enabled: raw.trace.enabled, retentionMs: Math.round(raw.trace.retentionDays * 86_400_000), maxBytes: Math.round(raw.trace.maxMegabytes * 1024 * 1024) }),
  });
}

function buildOps(o: RawConfig['ops']): Config['ops'] {
  // Each named for the log lines of what it did (the console's actions): its own name, else where it is.
  const tokens: OpsToken[] = [
    ...(o.token !== undefined ? [{ token: o.token, scopes: [...OPS_SCOPES], name: 'ops.token' }] : []),
    ...o.tokens.map((t, i) => ({ ...t, name: t.name ?? `ops.tokens[${i}]` })),
  ];
  const openMetrics = o.openMetrics ?? (tokens.length === 0 && isLoopbackHost(o.host));
  return deepFreeze({
    enabled: o.enabled,
    host: o.host,
    port: o.port,
    shutdownGraceMs: o.shutdownGraceSeconds * 1000,
    drainMs: o.drainSeconds * 1000,
    tokens,
    openScopes: [...(openMetrics ? (['metrics'] as const) : []), ...(tokens.length === 0 && isLoopbackHost(o.host) ? (['send-test'] as const) : [])],
    ...(o.tls ? { tls: { cert: path.resolve(o.tls.cert), key: path.resolve(o.tls.key) } } : {}),
    tenantLabels: o.tenantLabels,
    tenantRequests: o.tenantRequests,
  });
}

/** What a tenant is built with besides its own keys. */
export interface TenantContext extends UpstreamContext {
  /** A tenant from the HTTP tenant source: the host policy its upstream is held to. */
  readonly hostPolicy?: UpstreamHostPolicy;
}

/** One tenant, from the config files or from the HTTP tenant source (which passes its own host policy). */
export function buildTenant(t: RawTenant, at: (string | number)[], problems: PathIssue[], context: TenantContext): Tenant {
  const { hostPolicy } = context;
  const { upstream, identity, dkim, delivery, events, suppression, ...rest } = t;
  const built = upstream && buildUpstream(upstream, t.id, 'tenant', [...at, 'upstream'], problems, context);
  const ownKey = buildKey(dkim, [...at, 'dkim'], problems);
  // An installed certificate is the identity an Exchange connector knows a sender by: only its tenant's.
  const certificate = built?.kind === 'smtp' && upstream?.kind === 'smtp' && typeof upstream.tls === 'object' && upstream.tls.clientCertificateName !== undefined ? built.clientCertificate : undefined;
  if (certificate && !mayPresent(certificate, t)) {
    problems.push({ path: [...at, 'upstream', 'tls', 'clientCertificateName'], message: `is not a certificate of tenant "${t.id}": none of its names is a domain the tenant owns, and its tenants list does not name it` });
  }
  const tenant: Tenant = deepFreeze({
    ...rest,
    ...(built ? { upstream: built.kind === 'smtp' && hostPolicy ? { ...built, hostPolicy } : built } : {}),
    identity: {
      ...identity,
      ...(identity.from !== undefined ? { from: normalizeDomainOf(identity.from) } : {}),
      ...(identity.replyTo !== undefined ? { replyTo: normalizeDomainOf(identity.replyTo) } : {}),
    },
    dkim: { ...withoutKey(dkim), ...(ownKey ? { privateKey: ownKey } : {}) },
    delivery: {
      ...(delivery.mode !== undefined ? { mode: delivery.mode } : {}),
      ...(delivery.fallbackToSmarthostAfterMinutes !== undefined ? { fallbackToSmarthostAfterMs: delivery.fallbackToSmarthostAfterMinutes * 60_000 } : {}),
      verp: delivery.verp,
      ...(delivery.spool
        ? {
            spool: {
              ...(delivery.spool.maxMessages !== undefined ? { maxMessages: delivery.spool.maxMessages } : {}),
              ...(delivery.spool.maxMegabytes !== undefined ? { maxBytes: Math.round(delivery.spool.maxMegabytes * 1024 * 1024) } : {}),
            },
          }
        : {}),
    },
    ...(events?.webhook ? { webhook: buildWebhook(events.webhook, [...at, 'events', 'webhook'], problems) } : {}),
    ...(suppression
      ? {
          suppression: {
            ...(suppression.enabled !== undefined ? { enabled: suppression.enabled } : {}),
            ...(suppression.expiryDays !== undefined ? { expiryMs: Math.round(suppression.expiryDays * 86_400_000) } : {}),
            ...(suppression.action !== undefined ? { action: suppression.action } : {}),
          },
        }
      : {}),
  });
  return tenant;
}

type RawWebhook = NonNullable<RawConfig['events']['webhook']>;

function buildWebhook(w: RawWebhook, at: (string | number)[], problems: PathIssue[]) {
  const ca = readCa(w.ca, [...at, 'ca'], problems);
  return deepFreeze({
    url: w.url,
    secret: w.secret,
    ...(ca !== undefined ? { ca } : {}),
    types: [...w.types],
    timeoutMs: Math.round(w.timeoutSeconds * 1000),
    maxBatchEvents: w.maxBatchEvents,
    maxBatchBytes: w.maxBatchKilobytes * 1024,
    maxBacklogEvents: w.maxBacklogEvents,
  });
}

/** One tenant upstream on its own (a candidate the platform asks about), held to `hostPolicy`. */
export function buildTenantUpstream(u: RawUpstream, name: string, problems: PathIssue[], hostPolicy: UpstreamHostPolicy, certificates: ReadonlyMap<string, ClientCertificate>): Upstream {
  const built = buildUpstream(u, name, 'tenant', [], problems, { sharedKey: undefined, certificates });
  return built.kind === 'smtp' ? deepFreeze({ ...built, hostPolicy }) : built;
}

/** The operator's client certificates, by name; one that cannot be read or does not match its key is a problem at its key. */
function buildClientCertificates(raw: RawConfig['clientCertificates'], problems: PathIssue[]): ReadonlyMap<string, ClientCertificate> {
  const built = new Map<string, ClientCertificate>();
  for (const [name, files] of Object.entries(raw)) {
    const at = ['clientCertificates', name];
    const certificate = readClientCertificate(files.cert, files.key, name, { cert: [...at, 'cert'], key: [...at, 'key'] }, problems);
    if (certificate) built.set(name, deepFreeze({ ...certificate, ...(files.tenants ? { tenants: files.tenants } : {}) }));
  }
  return built;
}

function buildTenantSource(s: RawTenantSource, problems: PathIssue[]): TenantSourceSettings {
  const at = ['tenantSource'];
  const ca = readCa(s.ca, [...at, 'ca'], problems);
  return deepFreeze({
    url: s.url.replace(/\/+$/, ''),
    ...(s.token !== undefined ? { token: s.token } : {}),
    ...(ca !== undefined ? { ca } : {}),
    timeoutMs: Math.round(s.timeoutSeconds * 1000),
    cacheMs: Math.round(s.cacheSeconds * 1000),
    staleMs: Math.round(s.staleSeconds * 1000),
    notFoundMs: Math.round(s.notFoundCacheSeconds * 1000),
    maxEntries: s.maxEntries,
    maxLookupsPerSession: s.maxLookupsPerSession,
    maxLookupsPerClientPerMinute: s.maxLookupsPerClientPerMinute,
    upstreamHosts: s.upstreamHosts,
    ...(s.invalidationChannel !== undefined ? { invalidationChannel: s.invalidationChannel } : {}),
  });
}

function buildLimitStore(l: RawConfig['limits'], problems: PathIssue[]) {
  const redis = l.store?.redis;
  const at = ['limits', 'store', 'redis'];
  const ca = redis && readCa(redis.ca, [...at, 'ca'], problems);
  return deepFreeze({
    ...(redis ? { redis: { url: redis.url, keyPrefix: redis.keyPrefix, signingKey: redis.signingKey, ...(ca !== undefined ? { ca } : {}), timeoutMs: redis.timeoutMilliseconds } } : {}),
    ...(l.localShare !== undefined ? { localShare: l.localShare } : {}),
  });
}

function buildDelivery(d: RawConfig['delivery']): DeliveryPolicy {
  const { retry, spool } = d;
  return deepFreeze({
    mode: d.mode,
    spool: {
      path: path.resolve(spool.path),
      fsync: spool.fsync,
      minFreeBytes: Math.round(spool.minFreeMegabytes * 1024 * 1024),
      perTenant: { maxMessages: spool.perTenant.maxMessages, maxBytes: Math.round(spool.perTenant.maxMegabytes * 1024 * 1024) },
    },
    retry: { minMs: retry.minSeconds * 1000, maxMs: retry.maxSeconds * 1000, jitter: retry.jitter, maxLifetimeMs: retry.maxLifetimeHours * 3_600_000 },
    maxConcurrentDeliveries: d.maxConcurrentDeliveries,
    scanMs: d.scanSeconds * 1000,
  });
}

export function buildKey(raw: { privateKey?: string | undefined; selector?: string | undefined }, at: (string | number)[], problems: PathIssue[]): DkimPrivateKey | undefined {
  if (raw.privateKey === undefined) return undefined;
  const where = [...at, 'privateKey'];
  let key: KeyObject;
  try {
    key = createPrivateKey(raw.privateKey);
  } catch {
    problems.push({ path: where, message: 'is not a PEM private key' });
    return undefined;
  }
  if (key.asymmetricKeyType === 'ed25519') return { pem: raw.privateKey, algorithm: 'ed25519-sha256' };
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 1024) return { pem: raw.privateKey, algorithm: 'rsa-sha256' };
  problems.push({ path: where, message: 'must be an RSA key of at least 1024 bits (2048 recommended) or an ed25519 key' });
  return undefined;
}

function withoutKey<T extends { privateKey?: unknown }>(value: T): Omit<T, 'privateKey'> {
  const { privateKey, ...rest } = value;
  return rest;
}

/** user@bücher.example → user@xn--bcher-kva.example: the form SMTP without SMTPUTF8 and DNS need. */
function normalizeDomainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return `${address.slice(0, at)}@${asciiDomain(address.slice(at + 1))}`;
}

function buildProviderEvents(p: RawConfig['providerEvents'], problems: PathIssue[]): Config['providerEvents'] {
  const ca = readCa(p.ses?.ca, ['providerEvents', 'ses', 'ca'], problems);
  return deepFreeze({
    ...(p.mailgun ? { mailgun: p.mailgun } : {}),
    ...(p.sendgrid ? { sendgrid: { publicKey: p.sendgrid.publicKey.replace(/\s+/g, '') } } : {}),
    ...(p.postmark ? { postmark: { ...p.postmark, smtpHosts: p.postmark.smtpHosts.map((h) => h.toLowerCase()) } } : {}),
    ...(p.ses ? { ses: { topicArns: p.ses.topicArns, certificateHosts: p.ses.certificateHosts, ...(ca !== undefined ? { ca } : {}) } } : {}),
  });
}
