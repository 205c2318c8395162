// Access tokens for OAuth2 upstreams: fetched when first needed, cached per grant (provider, endpoint,
// Entra tenant, client, scope, mailbox), refreshed before they expire, one request at a time per grant
// however many connections ask, and dropped when a server refuses one. Tokens live in memory only:
// never logged, never written to the spool, never in check or explain output.
import type { TokenGrant, UpstreamHostPolicy } from '../../../config/types.js';
import { sanitizeUpstreamText } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { RelayMetrics } from '../../ops/metrics.js';
import { checkUpstreamHost } from '../host-policy.js';
import { jwtClaims } from './jwt.js';
import { type IssuedToken, requestToken, TokenError, tokenErrorLabel } from './token-endpoint.js';

/** A token is refreshed this long before it expires (or at 90 % of a shorter life). */
const REFRESH_BEFORE_MS = 5 * 60_000;
const REQUEST_TIMEOUT_MS = 10_000;

export interface TokenFacts {
  readonly expiresAt: number;
  /** What the token grants, as the endpoint or the token itself says (never the token). */
  readonly scopes: readonly string[];
}

interface Held {
  readonly token: IssuedToken;
  readonly refreshAt: number;
}

export interface AccessTokensDeps {
  readonly logger: Logger;
  readonly metrics?: RelayMetrics;
  /** Milliseconds since the epoch; tests pass a fake clock. */
  readonly now?: () => number;
  /** The deadline of one token request. Default: 10 s. */
  readonly requestTimeoutMs?: number;
}

export class AccessTokens {
  readonly #held = new Map<string, Held>();
  readonly #inFlight = new Map<string, Promise<IssuedToken>>();
  readonly #deps: AccessTokensDeps;
  readonly #now: () => number;

  constructor(deps: AccessTokensDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /**
   * A token for `grant`: the cached one while it is fresh, else one request (joined by every caller that
   * asks meanwhile). `renew`: the server refused the cached one; it is dropped first.
   */
  async get(grant: TokenGrant, who: { upstream: string; hostPolicy?: UpstreamHostPolicy }, renew = false): Promise<IssuedToken> {
    if (renew) this.#held.delete(grant.cacheKey);
    const held = this.#held.get(grant.cacheKey);
    const now = this.#now();
    if (held && now < held.refreshAt) return held.token;
    try {
      return await this.#fetch(grant, who);
    } catch (err) {
      // A refresh that failed while the old token is still good: use the old one.
      if (held && now < held.token.expiresAt) return held.token;
      throw err;
    }
  }

  /** What the cached token for `grant` allows, without the token. */
  facts(grant: TokenGrant): TokenFacts | undefined {
    const held = this.#held.get(grant.cacheKey);
    return held && factsOf(held.token);
  }

  #fetch(grant: TokenGrant, who: { upstream: string; hostPolicy?: UpstreamHostPolicy }): Promise<IssuedToken> {
    const running = this.#inFlight.get(grant.cacheKey);
    if (running) return running;
    const request = this.#request(grant, who).finally(() => this.#inFlight.delete(grant.cacheKey));
    this.#inFlight.set(grant.cacheKey, request);
    return request;
  }

  async #request(grant: TokenGrant, who: { upstream: string; hostPolicy?: UpstreamHostPolicy }): Promise<IssuedToken> {
    const { logger, metrics } = this.#deps;
    const labels = { upstream: metrics?.upstream(who.upstream) ?? who.upstream, provider: grant.provider };
    const where = { upstream: who.upstream, provider: grant.provider, endpoint: new URL(grant.tokenUrl).host };
    try {
      // A tenant typed this endpoint in: it is held to the same host policy as its upstream.
      let address: string | undefined;
      const policy = who.hostPolicy;
      if (grant.tokenUrlFromTenant && policy && (policy.denySpecialAddresses || policy.denyPrivateAddresses)) {
        const checked = await checkUpstreamHost(new URL(grant.tokenUrl).hostname.replace(/^\[|\]$/g, ''), policy);
        if (!checked.ok) throw new TokenError('host-forbidden', checked.reason, true);
        address = checked.address;
      }
      const token = await requestToken(grant, { timeoutMs: this.#deps.requestTimeoutMs ?? REQUEST_TIMEOUT_MS, now: this.#now, ...(address ? { address } : {}) });
      const life = token.expiresAt - this.#now();
      this.#held.set(grant.cacheKey, { token, refreshAt: token.expiresAt - Math.min(REFRESH_BEFORE_MS, life / 10) });
      metrics?.tokenRequests.inc({ ...labels, result: 'issued', error: '' });
      logger.info({ event: 'oauth2-token', ...where, expiresInSeconds: Math.round(life / 1000) });
      return token;
    } catch (err) {
      const failure = err instanceof TokenError ? err : new TokenError('unreachable', sanitizeUpstreamText((err as Error).message), false);
      metrics?.tokenRequests.inc({ ...labels, result: failure.refused ? 'refused' : 'failed', error: tokenErrorLabel(failure.reason) });
      logger.warn({ event: 'oauth2-token-failed', ...where, reason: failure.reason, err: failure.message }, 'no access token for the upstream; its mail is deferred');
      throw failure;
    }
  }
}

function factsOf(token: IssuedToken): TokenFacts {
  const claims = jwtClaims(token.accessToken);
  // Microsoft's app tokens carry their permissions as roles (SMTP.SendAsApp); delegated ones as scp.
  const fromClaims = [claims?.roles, claims?.scp].flatMap((v) => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(' ') : []));
  const scopes = token.scope ? token.scope.split(' ') : fromClaims;
  return { expiresAt: token.expiresAt, scopes: scopes.filter(Boolean) };
}
