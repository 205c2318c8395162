// An upstream of the snapshot from its checked raw values: its port by TLS mode, its CA read, its login
// (a password, or an OAuth2 grant with a certificate checked against its key), and the ids that tell one
// credential from another without showing it.
import { createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import path from 'node:path';
import { deepFreeze, readCa, readClientCertificate } from './build-parts.js';
import { credentialId } from './credentials.js';
import type { RawUpstream } from './schema.js';
import { tlsModeOf } from './schema/upstream.js';
import type { ClientCertificate, Limits, TokenGrant, Upstream, UpstreamAuth } from './types.js';
import type { PathIssue } from './validate.js';
import { DEFAULT_UPSTREAM_PORT, PROVIDER_LIMITS } from './vocabulary.js';

/** What an upstream is built with besides its own keys. */
export interface UpstreamContext {
  /** The relays' shared signing key, which credential ids are made with. */
  readonly sharedKey: string | undefined;
  /** The operator's client certificates, by name. */
  readonly certificates: ReadonlyMap<string, ClientCertificate>;
}

export function buildUpstream(u: RawUpstream, name: string, owner: 'tenant' | 'platform', at: (string | number)[], problems: PathIssue[], context: UpstreamContext): Upstream {
  if (u.kind === 'maildir') {
    // Relative paths are relative to the working directory, like every other path the relay is given.
    return Object.freeze({ kind: 'maildir', name, path: path.resolve(u.path ?? path.join('var', 'mail', name)) });
  }
  const ca = readCa(u.ca, [...at, 'ca'], problems);
  const mode = tlsModeOf(u);
  const clientCertificate = clientCertificateOf(u, at, problems, context.certificates);
  return deepFreeze({
    kind: 'smtp',
    owner,
    name,
    host: u.host,
    port: u.port ?? DEFAULT_UPSTREAM_PORT[mode],
    tls: mode,
    ...(clientCertificate ? { clientCertificate } : {}),
    ...authOf(u, name, [...at, 'auth'], problems, context.sharedKey),
    ...limitsOf(u),
    ...(u.ramp ? { ramp: { messagesPerDay: u.ramp.messagesPerDay, sinceMs: Date.parse(`${u.ramp.since}T00:00:00Z`), doubleEveryMs: u.ramp.doubleEveryDays * 86_400_000 } } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(u.servername !== undefined ? { servername: u.servername } : {}),
    ...(u.chunking ? {} : { chunking: false }),
    allowInsecureAuth: u.allowInsecureAuth,
    timeoutMs: Math.round(u.timeoutSeconds * 1000),
    connectTimeoutMs: Math.round(u.connectTimeoutSeconds * 1000),
    maxConnections: u.maxConnections,
  });
}

/**
 * The mailbox's limits: its provider's documented ones, each overridden by the upstream's own. Recipients
 * per message is not a budget (nothing is counted): delivery splits a message's recipients by it.
 */
function limitsOf(u: Extract<RawUpstream, { kind: 'smtp' }>): { limits?: Limits; recipientsPerMessage?: number } {
  const { recipientsPerMessage, ...limits } = { ...(u.provider ? PROVIDER_LIMITS[u.provider] : {}), ...u.limits };
  return { ...(Object.keys(limits).length > 0 ? { limits } : {}), ...(recipientsPerMessage !== undefined ? { recipientsPerMessage } : {}) };
}

/** The upstream's client certificate: its own files, or one the operator installed, by name. */
function clientCertificateOf(u: Extract<RawUpstream, { kind: 'smtp' }>, at: (string | number)[], problems: PathIssue[], certificates: ReadonlyMap<string, ClientCertificate>): ClientCertificate | undefined {
  if (typeof u.tls === 'string') return undefined;
  const { clientCertificate, clientKey, clientCertificateName } = u.tls;
  if (clientCertificateName !== undefined) return certificates.get(clientCertificateName);
  if (clientCertificate === undefined || clientKey === undefined) return undefined;
  return readClientCertificate(clientCertificate, clientKey, clientCertificate, { cert: [...at, 'tls', 'clientCertificate'], key: [...at, 'tls', 'clientKey'] }, problems);
}

const DEFAULT_TOKEN_URL = {
  microsoft: (tenantId: string) => `https://login.microsoftonline.com/${encodeURIComponent(tenantId)}/oauth2/v2.0/token`,
  google: () => 'https://oauth2.googleapis.com/token',
} as const;

/** The upstream's login: the flat username/password keys, or `auth` (a password, or an OAuth2 grant). */
function authOf(u: Extract<RawUpstream, { kind: 'smtp' }>, name: string, at: (string | number)[], problems: PathIssue[], sharedKey: string | undefined): { auth?: UpstreamAuth } {
  const password = (user: string, pass: string): { auth: UpstreamAuth } => ({ auth: { kind: 'password', user, pass, id: credentialId(sharedKey, 'password', user, pass) } });
  if (u.username !== undefined && u.password !== undefined) return password(u.username, u.password);
  const a = u.auth;
  if (!a) return {};
  if (a.kind === 'password') return password(a.username, a.password);
  const ca = readCa(a.ca, [...at, 'ca'], problems);
  const common = { ...(a.scope !== undefined ? { scope: a.scope } : {}), ...(ca !== undefined ? { ca } : {}), tokenUrlFromTenant: a.tokenUrl !== undefined };
  // A token belongs to the grant that obtained it: everything that makes the grant, the secret material
  // (as an HMAC) and the owning tenant included. Two tenants typing the same public facts never share one.
  const grantKey = (tenant: string, client: string, ...secret: string[]) => {
    const id = credentialId(sharedKey, a.provider, tenant, client, ...secret);
    return { id, cacheKey: [a.provider, tenant, client, a.scope ?? '', a.mailbox, a.tokenUrl ?? '', id, name].join('|') };
  };
  switch (a.provider) {
    case 'microsoft': {
      const tokenUrl = a.tokenUrl ?? DEFAULT_TOKEN_URL.microsoft(a.tenantId);
      let credential: Extract<TokenGrant, { provider: 'microsoft' }>['credential'] | undefined;
      if (a.clientSecret !== undefined) credential = { kind: 'secret', secret: a.clientSecret };
      else if (a.certificate !== undefined && a.privateKey !== undefined) {
        const thumbprint = certificateThumbprint(a.certificate, a.privateKey, at, problems);
        if (thumbprint) credential = { kind: 'certificate', thumbprint, privateKey: a.privateKey };
      }
      if (!credential) return {};
      const { id, cacheKey } = grantKey(a.tenantId, a.clientId, ...(credential.kind === 'secret' ? [credential.secret] : [credential.privateKey, credential.thumbprint]));
      return { auth: { kind: 'oauth2', user: a.mailbox, id, grant: { ...common, provider: 'microsoft', tokenUrl, clientId: a.clientId, credential, cacheKey } } };
    }
    case 'google': {
      // Copied out of the JSON key file, the key often keeps its escaped line breaks.
      const privateKey = a.privateKey.includes('\n') ? a.privateKey : a.privateKey.replaceAll('\\n', '\n');
      if (!isPrivateKey(privateKey, 'rsa')) {
        problems.push({ path: [...at, 'privateKey'], message: "is not the service account's RSA private key (the private_key of its JSON key file)" });
        return {};
      }
      const tokenUrl = a.tokenUrl ?? DEFAULT_TOKEN_URL.google();
      const { id, cacheKey } = grantKey('', a.serviceAccount, privateKey);
      return { auth: { kind: 'oauth2', user: a.mailbox, id, grant: { ...common, provider: 'google', tokenUrl, serviceAccount: a.serviceAccount, privateKey, subject: a.mailbox, cacheKey } } };
    }
    case 'client-credentials': {
      const { id, cacheKey } = grantKey(a.tokenUrl, a.clientId, a.clientSecret);
      return { auth: { kind: 'oauth2', user: a.mailbox, id, grant: { ...common, provider: 'client-credentials', tokenUrl: a.tokenUrl, clientId: a.clientId, clientSecret: a.clientSecret, cacheKey } } };
    }
  }
}

/** The x5t of an app's certificate (base64url SHA-1 of its DER), after checking the key belongs to it. */
function certificateThumbprint(certificate: string, privateKey: string, at: (string | number)[], problems: PathIssue[]): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certificate);
  } catch {
    problems.push({ path: [...at, 'certificate'], message: 'is not a PEM certificate' });
    return undefined;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKey);
  } catch {
    problems.push({ path: [...at, 'privateKey'], message: 'is not a PEM private key' });
    return undefined;
  }
  if (!cert.checkPrivateKey(key)) {
    problems.push({ path: [...at, 'privateKey'], message: 'does not belong to the certificate' });
    return undefined;
  }
  return createHash('sha1').update(cert.raw).digest('base64url');
}

function isPrivateKey(pem: string, type: string): boolean {
  try {
    return createPrivateKey(pem).asymmetricKeyType === type;
  } catch {
    return false;
  }
}
