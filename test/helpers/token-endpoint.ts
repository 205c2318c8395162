// A real OAuth 2.0 token endpoint on loopback (node:http, or node:https with the test CA), speaking
// Microsoft's and Google's forms: it checks each grant as they would (the client secret, the signature and
// claims of a certificate's client assertion or a service account's JWT), issues short-lived tokens it
// remembers, counts requests, and can be told to refuse (with the provider's error body) or to hang.
import { createPublicKey, createVerify, randomBytes, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface Client {
  /** Microsoft: the app's client secret (or a certificate's public key, below). */
  readonly secret?: string;
  /** Microsoft certificate credential or Google service account: the public key that verifies its JWTs. */
  readonly publicKey?: string;
  /** Microsoft: the x5t (base64url SHA-1 thumbprint) the assertion must name. */
  readonly thumbprint?: string;
}

export interface TokenRequest {
  readonly form: Record<string, string>;
  /** The claims of the JWT it carried (client assertion or service-account assertion), once verified. */
  readonly claims?: Record<string, unknown>;
  readonly header?: Record<string, unknown>;
}

export type Behaviour = 'issue' | 'refuse' | 'hang' | 'server-error';

export interface TokenEndpoint {
  /** The token URL: <base>/<tenant>/oauth2/v2.0/token for Microsoft's form, <base>/token for Google's. */
  readonly base: string;
  readonly requests: TokenRequest[];
  /** Tokens issued and not revoked: the upstream accepts exactly these. */
  readonly valid: Set<string>;
  /** Every token ever issued (to look for them where they must never be). */
  readonly issued: string[];
  behaviour: Behaviour;
  /** expires_in of issued tokens. */
  expiresIn: number;
  /** Forget every token issued so far (an admin revoked the app's consent, or the secret was rotated). */
  revokeAll(): void;
  /** Stop listening; a request gets a refused connection (the endpoint is down). */
  stop(): Promise<void>;
  /** Listen again on the same port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface TokenEndpointOptions {
  /** client_id (Microsoft, client-credentials) or service-account email (Google) → its credential. */
  readonly clients: Record<string, Client>;
  /** Serve https with this certificate (signed by the test CA). */
  readonly tls?: { readonly key: string; readonly cert: string };
}

export async function startTokenEndpoint(options: TokenEndpointOptions): Promise<TokenEndpoint> {
  const requests: TokenRequest[] = [];
  const valid = new Set<string>();
  const issued: string[] = [];
  const hanging = new Set<http.ServerResponse>();
  const state: { behaviour: Behaviour; expiresIn: number } = { behaviour: 'issue', expiresIn: 3599 };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
      const tokenUrl = `${base}${path}`;
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(body));
      };
      const google = path === '/token';
      if (req.method !== 'POST' || req.headers['content-type'] !== 'application/x-www-form-urlencoded') return json(400, { error: 'invalid_request' });
      const checked = google ? checkGoogle(form, tokenUrl, options.clients) : checkMicrosoft(form, tokenUrl, options.clients);
      requests.push({ form, ...(checked.jwt ? { claims: checked.jwt.claims, header: checked.jwt.header } : {}) });
      if (state.behaviour === 'hang') {
        hanging.add(res);
        return;
      }
      if (state.behaviour === 'server-error') return json(503, { error: 'temporarily_unavailable' });
      const refusal = state.behaviour === 'refuse' ? (google ? googleError('invalid_grant', 'Invalid JWT Signature.') : microsoftError('invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID')) : checked.error;
      if (refusal) return json(refusal.status, refusal.body);
      const accessToken = google ? `ya29.${randomBytes(24).toString('base64url')}` : fakeJwt({ aud: 'https://outlook.office.com', roles: ['SMTP.SendAsApp'], appid: form.client_id });
      valid.add(accessToken);
      issued.push(accessToken);
      json(200, google ? { access_token: accessToken, expires_in: state.expiresIn, token_type: 'Bearer' } : { token_type: 'Bearer', expires_in: state.expiresIn, ext_expires_in: state.expiresIn, access_token: accessToken });
    });
  };

  const server = options.tls ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const base = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const res of hanging) res.destroy();
      hanging.clear();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    base,
    requests,
    valid,
    issued,
    get behaviour() {
      return state.behaviour;
    },
    set behaviour(b: Behaviour) {
      state.behaviour = b;
    },
    get expiresIn() {
      return state.expiresIn;
    },
    set expiresIn(s: number) {
      state.expiresIn = s;
    },
    revokeAll: () => valid.clear(),
    stop,
    restart: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    close: () => (server.listening ? stop() : Promise.resolve()),
  };
}

interface Checked {
  readonly error?: { status: number; body: unknown };
  readonly jwt?: { header: Record<string, unknown>; claims: Record<string, unknown> };
}

// Microsoft identity platform, v2.0 client credentials (a secret, or a certificate's client assertion).
function checkMicrosoft(form: Record<string, string>, tokenUrl: string, clients: Record<string, Client>): Checked {
  if (form.grant_type !== 'client_credentials') return { error: microsoftError('unsupported_grant_type', 70003, 'The app requested an unsupported grant type') };
  if (form.scope !== 'https://outlook.office365.com/.default') return { error: microsoftError('invalid_scope', 1002012, `The provided value for scope ${form.scope ?? ''} is not valid`) };
  const client = form.client_id ? clients[form.client_id] : undefined;
  if (!client) return { error: microsoftError('unauthorized_client', 700016, `Application with identifier '${form.client_id ?? ''}' was not found in the directory`) };
  if (form.client_secret !== undefined) {
    return form.client_secret === client.secret ? {} : { error: microsoftError('invalid_client', 7000215, 'Invalid client secret provided.') };
  }
  if (form.client_assertion_type !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' || !form.client_assertion) {
    return { error: microsoftError('invalid_request', 900144, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'") };
  }
  const jwt = verifyJwt(form.client_assertion, client.publicKey);
  if (!jwt) return { error: microsoftError('invalid_client', 700027, 'Client assertion failed signature validation.') };
  const { claims, header } = jwt;
  const now = Date.now() / 1000;
  const good = header.x5t === client.thumbprint && claims.aud === tokenUrl && claims.iss === form.client_id && claims.sub === form.client_id && typeof claims.jti === 'string' && Number(claims.exp) > now && Number(claims.nbf) <= now + 60;
  return good ? { jwt } : { jwt, error: microsoftError('invalid_client', 700024, 'Client assertion is not within its valid time range, or names another audience, issuer or key.') };
}

// Google's OAuth 2.0 for service accounts: the JWT bearer grant, the mailbox as the subject.
function checkGoogle(form: Record<string, string>, tokenUrl: string, clients: Record<string, Client>): Checked {
  if (form.grant_type !== 'urn:ietf:params:oauth:grant-type:jwt-bearer' || !form.assertion) return { error: googleError('unsupported_grant_type', 'Invalid grant_type') };
  const [, payload] = form.assertion.split('.');
  const unverified = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8') || '{}') as Record<string, unknown>;
  const client = typeof unverified.iss === 'string' ? clients[unverified.iss] : undefined;
  const jwt = client && verifyJwt(form.assertion, client.publicKey);
  if (!jwt) return { error: googleError('invalid_grant', 'Invalid JWT Signature.') };
  const { claims } = jwt;
  const now = Date.now() / 1000;
  if (claims.aud !== tokenUrl) return { jwt, error: googleError('invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.') };
  if (!(Number(claims.iat) <= now + 60 && Number(claims.exp) > now && Number(claims.exp) - Number(claims.iat) <= 3600)) return { jwt, error: googleError('invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.') };
  if (claims.scope !== 'https://mail.google.com/' || typeof claims.sub !== 'string') return { jwt, error: googleError('unauthorized_client', 'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.') };
  return { jwt };
}

function verifyJwt(token: string, publicKeyPem: string | undefined): { header: Record<string, unknown>; claims: Record<string, unknown> } | undefined {
  if (!publicKeyPem) return undefined;
  const [h, p, s] = token.split('.');
  if (!h || !p || !s) return undefined;
  const key: KeyObject = createPublicKey(publicKeyPem);
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
  if (header.alg !== 'RS256' || header.typ !== 'JWT') return undefined;
  if (!createVerify('RSA-SHA256').update(`${h}.${p}`).verify(key, Buffer.from(s, 'base64url'))) return undefined;
  return { header, claims: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown> };
}

function microsoftError(error: string, code: number, text: string) {
  const traceId = randomBytes(8).toString('hex');
  return {
    status: error === 'invalid_client' ? 401 : 400,
    body: { error, error_description: `AADSTS${code}: ${text} Trace ID: ${traceId}\r\nCorrelation ID: ${traceId}\r\nTimestamp: 2026-12-02 00:00:00Z`, error_codes: [code], timestamp: '2026-12-02 00:00:00Z', trace_id: traceId, correlation_id: traceId },
  };
}

function googleError(error: string, description: string) {
  return { status: 400, body: { error, error_description: description } };
}

/** An access token shaped like Entra's (a JWT whose claims say its roles); nothing checks its signature. */
function fakeJwt(claims: Record<string, unknown>): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ typ: 'JWT', alg: 'RS256' })}.${part({ ...claims, exp: Math.floor(Date.now() / 1000) + 3600 })}.${randomBytes(32).toString('base64url')}`;
}
