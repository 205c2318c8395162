// One pooled nodemailer transport per distinct upstream settings, so connections are reused across
// messages and tenants that share an upstream share its pool. Evicting a pool closes it.
import { LRUCache } from 'lru-cache';
import nodemailer from 'nodemailer';
import type { SMTPPoolOptions } from 'nodemailer/lib/smtp-pool';
import type { SmtpUpstream } from '../../config/types.js';
import type { PooledTransport } from './nodemailer-seams.js';

/** Where an OAuth2 upstream's pool gets its access tokens (`renew`: the server refused the last one). */
export type TokenSource = (upstream: SmtpUpstream, renew: boolean) => Promise<{ readonly accessToken: string; readonly expiresAt: number }>;

const noTokens: TokenSource = () => Promise.reject(new Error('no token source for OAuth2 upstreams'));

export class UpstreamPools {
  readonly #heloName: string;
  readonly #pools: LRUCache<string, PooledTransport>;
  /** Upstream objects are frozen per snapshot: their key is computed once, not per message. */
  readonly #keys = new WeakMap<SmtpUpstream, string>();
  readonly tokens: TokenSource;

  constructor(heloName: string, tokens: TokenSource = noTokens, maxPools = 1000) {
    this.#heloName = heloName;
    this.tokens = tokens;
    this.#pools = new LRUCache<string, PooledTransport>({
      max: maxPools,
      // In-flight sends on a closed pool still finish; only idle connections go at once.
      dispose: (transport) => transport.close(),
    });
  }

  get(upstream: SmtpUpstream): PooledTransport {
    // The key is the settings themselves: a changed password, client secret or port is a new pool, never a
    // reused one. (In memory only; it is never logged.)
    let key = this.#keys.get(upstream);
    if (key === undefined) {
      key = poolKey(upstream, this.#heloName);
      this.#keys.set(upstream, key);
    }
    let transport = this.#pools.get(key);
    if (!transport) {
      transport = nodemailer.createTransport(transportOptions(upstream, this.#heloName, this.tokens));
      this.#pools.set(key, transport);
    }
    return transport;
  }

  get size(): number {
    return this.#pools.size;
  }

  /**
   * After a reload: closes the pools of upstream settings no longer in use. Their in-flight sends still
   * finish (close() waits for them); the next message to a changed upstream gets a new pool.
   */
  retain(upstreams: readonly SmtpUpstream[]): void {
    const live = new Set(upstreams.map((u) => poolKey(u, this.#heloName)));
    for (const key of [...this.#pools.keys()]) if (!live.has(key)) this.#pools.delete(key);
  }

  get heloName(): string {
    return this.#heloName;
  }

  close(): void {
    this.#pools.clear();
  }
}

/** A connection logged in with credentials belongs to their owner: the tenant is part of the key. */
function poolKey(u: SmtpUpstream, heloName: string): string {
  return JSON.stringify({ ...transportOptions(u, heloName), grant: u.auth?.kind === 'oauth2' ? u.auth.grant : undefined, owner: u.auth ? u.name : undefined });
}

/**
 * nodemailer's options for an upstream. With `tokens`, an OAuth2 upstream's connections log in with
 * XOAUTH2 and a token from it; nodemailer asks again with renew=true when a server answers the token with
 * a 334 challenge (Google's way of refusing one).
 */
export function transportOptions(u: SmtpUpstream, heloName: string, tokens?: TokenSource): SMTPPoolOptions & { pool: true } {
  const auth = u.auth;
  return {
    pool: true,
    host: u.host,
    port: u.port,
    name: heloName,
    // implicit: TLS from the first byte; starttls: refuse to go on without it; none: never upgrade.
    secure: u.tls === 'implicit',
    requireTLS: u.tls === 'starttls',
    ignoreTLS: u.tls === 'none',
    ...(auth?.kind === 'password' ? { auth: { user: auth.user, pass: auth.pass } } : {}),
    ...(auth?.kind === 'oauth2'
      ? {
          auth: {
            type: 'OAuth2',
            user: auth.user,
            ...(tokens
              ? {
                  provisionCallback: (_user: string, renew: boolean, done: (err: Error | null, token?: string, expires?: number) => void) =>
                    void tokens(u, renew).then(
                      (t) => done(null, t.accessToken, t.expiresAt),
                      (err: Error) => done(err),
                    ),
                }
              : {}),
          },
        }
      : {}),
    tls: {
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      ...(u.ca !== undefined ? { ca: u.ca } : {}),
      ...(u.servername !== undefined ? { servername: u.servername } : {}),
      // The relay's client certificate, for an upstream that knows it by certificate. Sent only in a
      // handshake that checks the server's own certificate first (rejectUnauthorized above).
      ...(u.clientCertificate ? { cert: u.clientCertificate.cert, key: u.clientCertificate.key } : {}),
    },
    maxConnections: u.maxConnections,
    // Reconnecting costs a handshake (a TLS one, often): keep a connection for many messages, as Postfix does.
    maxMessages: 1000,
    connectionTimeout: u.connectTimeoutMs,
    greetingTimeout: u.connectTimeoutMs,
    socketTimeout: u.timeoutMs,
    // File access stays on: a queued message is handed over as { path } so a resend re-reads it. Only
    // the relay builds message objects; nothing from a client is ever interpreted as a path or URL.
    disableUrlAccess: true,
    logger: false,
  };
}
