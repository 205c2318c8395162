// One token request: the grant's form POSTed to its endpoint, under a deadline, certificates checked, and
// the answer read as OAuth 2.0 says (RFC 6749 5.1, 5.2). Microsoft: client credentials with a secret or
// a certificate's signed assertion; Google: a service account's JWT bearer grant for the mailbox; any other
// server: client credentials. Errors carry the endpoint's own code (invalid_client, AADSTS7000215, ...),
// never a secret or a token.
import { randomUUID } from 'node:crypto';
import type { TokenGrant } from '../../../config/types.js';
import { sanitizeUpstreamText } from '../../errors.js';
import { jsonOf, requestHttp } from '../../http-client.js';
import { signJwt } from './jwt.js';

export interface IssuedToken {
  readonly accessToken: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
  /** The scopes the endpoint said it granted, when it said. */
  readonly scope?: string;
}

/** A token request that failed: the endpoint refused (with its error code) or could not be reached. */
export class TokenError extends Error {
  readonly code = 'ETOKEN';
  /** The endpoint's `error` (and AADSTS code), or unreachable, timeout, malformed, http-<status>. */
  readonly reason: string;
  /** The endpoint said no: retrying the same credentials will not help until they are fixed. */
  readonly refused: boolean;
  constructor(reason: string, description: string, refused: boolean) {
    super(`token endpoint: ${reason}${description ? ` (${description})` : ''}`);
    this.name = 'TokenError';
    this.reason = reason;
    this.refused = refused;
  }
}

/** A response larger than this is not a token response. */
const MAX_BODY_BYTES = 64 * 1024;

export interface TokenRequestOptions {
  readonly timeoutMs: number;
  /** Connect here instead of resolving the host again (the address the host policy checked). */
  readonly address?: string;
  readonly now?: () => number;
}

export async function requestToken(grant: TokenGrant, options: TokenRequestOptions): Promise<IssuedToken> {
  const now = options.now ?? Date.now;
  const body = new URLSearchParams(formOf(grant, now())).toString();
  const url = new URL(grant.tokenUrl);
  const started = now();
  const { status, json } = await post(url, body, grant.ca, options);
  const answer = (json ?? {}) as Record<string, unknown>;
  if (status !== 200) {
    // The endpoint is often one a tenant typed in: its words are cleaned and bounded before they go anywhere.
    const error = errorCodeOf(answer.error) ?? (typeof answer.error === 'string' ? 'unreadable-error' : `http-${status}`);
    // Entra puts its AADSTS code in the description: the part that tells "expired secret" from "wrong id".
    const description = typeof answer.error_description === 'string' ? sanitizeUpstreamText(answer.error_description.slice(0, 4096).split(/\r?\n/)[0] ?? '') : '';
    const aadsts = /\bAADSTS\d{1,12}\b/.exec(description)?.[0];
    throw new TokenError(aadsts ? `${error} ${aadsts}` : error, description, status === 400 || status === 401 || status === 403);
  }
  const accessToken = answer.access_token;
  const expiresIn = Number(answer.expires_in);
  if (typeof accessToken !== 'string' || !accessToken || !Number.isFinite(expiresIn) || expiresIn <= 0) {
    throw new TokenError('malformed', 'no access_token and expires_in in the answer', false);
  }
  return { accessToken, expiresAt: started + expiresIn * 1000, ...(typeof answer.scope === 'string' ? { scope: answer.scope } : {}) };
}

/** An OAuth 2.0 error code as RFC 6749 5.2 shapes it, or undefined for anything else (it is shown and logged). */
function errorCodeOf(value: unknown): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(value) ? value : undefined;
}

/**
 * A token failure's reason as a metric label: one of a fixed set, whatever the endpoint said, so an
 * endpoint cannot add a series per word it makes up.
 */
export function tokenErrorLabel(reason: string): string {
  const code = reason.split(' ')[0] ?? '';
  if (KNOWN_ERRORS.has(code)) return code;
  return /^http-\d{3}$/.test(code) ? `http-${code.slice(5, 6)}xx` : 'other';
}

const KNOWN_ERRORS = new Set([
  // RFC 6749 5.2
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'temporarily_unavailable',
  'server_error',
  // The relay's own
  'unreachable',
  'timeout',
  'malformed',
  'host-forbidden',
  'unreadable-error',
]);

/** The form of the grant (RFC 6749 4.4; RFC 7523 for the JWT bearer and the client assertion). */
function formOf(grant: TokenGrant, nowMs: number): Record<string, string> {
  const iat = Math.floor(nowMs / 1000);
  switch (grant.provider) {
    case 'microsoft': {
      const form: Record<string, string> = { grant_type: 'client_credentials', client_id: grant.clientId, scope: grant.scope ?? '' };
      if (grant.credential.kind === 'secret') return { ...form, client_secret: grant.credential.secret };
      const assertion = signJwt(
        { x5t: grant.credential.thumbprint },
        { aud: grant.tokenUrl, iss: grant.clientId, sub: grant.clientId, jti: randomUUID(), nbf: iat, iat, exp: iat + 600 },
        grant.credential.privateKey,
      );
      return { ...form, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion };
    }
    case 'google': {
      const assertion = signJwt({}, { iss: grant.serviceAccount, sub: grant.subject, scope: grant.scope ?? '', aud: grant.tokenUrl, iat, exp: iat + 3600 }, grant.privateKey);
      return { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion };
    }
    case 'client-credentials':
      return { grant_type: 'client_credentials', client_id: grant.clientId, client_secret: grant.clientSecret, ...(grant.scope ? { scope: grant.scope } : {}) };
  }
}

async function post(url: URL, body: string, ca: string | undefined, options: TokenRequestOptions): Promise<{ status: number; json: unknown }> {
  const answer = await requestHttp({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body,
    ...(ca !== undefined ? { ca } : {}),
    timeoutMs: options.timeoutMs,
    maxBytes: MAX_BODY_BYTES,
    ...(options.address !== undefined ? { address: options.address } : {}),
  });
  if (answer.kind === 'failed') {
    if (answer.timeout) throw new TokenError('timeout', 'no answer in time', false);
    throw new TokenError('unreachable', sanitizeUpstreamText(answer.code ?? answer.message), false);
  }
  if (answer.truncated && answer.status === 200) throw new TokenError('malformed', `the answer is larger than ${MAX_BODY_BYTES} bytes`, false);
  // A refusal's body, cut at the cap, is read as far as it is JSON: its status still says what happened.
  const json = answer.truncated ? undefined : jsonOf(answer.body);
  if (json === undefined && answer.status === 200) throw new TokenError('malformed', 'the answer is not JSON', false);
  return { status: answer.status, json };
}
