// One connection pool per distinct upstream settings, so connections are reused across messages and
// tenants that share an upstream share its pool. Evicting a pool closes it.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { SmtpUpstream } from '../../config/types.js';
import { type ClientOptions, SmtpClientConnection } from './smtp-client.js';

/** Where an OAuth2 upstream's pool gets its access tokens (`renew`: the server refused the last one). */
export type TokenSource = (upstream: SmtpUpstream, renew: boolean) => Promise<{ readonly accessToken: string; readonly expiresAt: number }>;

const noTokens: TokenSource = () => Promise.reject(new Error('no token source for OAuth2 upstreams'));

/** Reconnecting costs a handshake (a TLS one, often): a connection carries many messages, as Postfix's do. */
const MESSAGES_PER_CONNECTION = 1000;

/**
 * Up to maxConnections connections to one upstream. A message takes an idle one, or opens one while
 * under the limit, or waits for one to come back. A connection that failed is closed, never handed on
 * (smtp-client.ts ends one whose transaction did not end cleanly).
 */
export class ConnectionPool {
  readonly #options: ClientOptions;
  readonly #max: number;
  readonly #idle: SmtpClientConnection[] = [];
  readonly #waiting: ((c: SmtpClientConnection | undefined) => void)[] = [];
  #open = 0;
  #closed = false;

  constructor(options: ClientOptions, maxConnections: number) {
    this.#options = options;
    this.#max = Math.max(1, maxConnections);
  }

  /** Runs one transaction on a connection of the pool; the connection goes back unless it failed. */
  async run<T>(fn: (c: SmtpClientConnection) => Promise<T>): Promise<T> {
    const c = await this.#acquire();
    try {
      return await fn(c);
    } finally {
      this.#release(c);
    }
  }

  /** Closes the idle connections now, and the others as their transactions end. */
  close(): void {
    this.#closed = true;
    for (const c of this.#idle.splice(0)) this.#drop(c);
    for (const w of this.#waiting.splice(0)) w(undefined);
  }

  async #acquire(): Promise<SmtpClientConnection> {
    for (;;) {
      if (this.#closed) throw new Error('the upstream pool is closed');
      const idle = this.#idle.pop();
      if (idle) {
        if (idle.usable) return idle;
        this.#drop(idle);
        continue;
      }
      if (this.#open < this.#max) {
        this.#open++;
        try {
          return await SmtpClientConnection.open(this.#options);
        } catch (err) {
          this.#open--;
          this.#wakeOne();
          throw err;
        }
      }
      const handed = await new Promise<SmtpClientConnection | undefined>((resolve) => this.#waiting.push(resolve));
      if (handed) return handed;
    }
  }

  #release(c: SmtpClientConnection): void {
    if (!c.usable || this.#closed || c.sent >= MESSAGES_PER_CONNECTION) {
      this.#drop(c);
      this.#wakeOne();
      return;
    }
    const waiter = this.#waiting.shift();
    if (waiter) return waiter(c);
    this.#idle.push(c);
    // An idle connection the server closes (or times out) is dropped when it is next taken.
  }

  /** A waiter, if any, may now open a connection of its own. */
  #wakeOne(): void {
    this.#waiting.shift()?.(undefined);
  }

  #drop(c: SmtpClientConnection): void {
    this.#open--;
    c.quit();
  }
}

export class UpstreamPools {
  readonly #heloName: string;
  readonly #pools: LRUCache<string, ConnectionPool>;
  /** Upstream objects are frozen per snapshot: their key is computed once, not per message. */
  readonly #keys = new WeakMap<SmtpUpstream, string>();
  readonly tokens: TokenSource;

  constructor(heloName: string, tokens: TokenSource = noTokens, maxPools = 1000) {
    this.#heloName = heloName;
    this.tokens = tokens;
    this.#pools = new LRUCache<string, ConnectionPool>({
      max: maxPools,
      // In-flight sends on a closed pool still finish; only idle connections go at once.
      dispose: (pool) => pool.close(),
    });
  }

  get(upstream: SmtpUpstream): ConnectionPool {
    const key = this.#keyOf(upstream);
    let pool = this.#pools.get(key);
    if (!pool) {
      pool = new ConnectionPool(clientOptions(upstream, this.#heloName, this.tokens), upstream.maxConnections);
      this.#pools.set(key, pool);
    }
    return pool;
  }

  get size(): number {
    return this.#pools.size;
  }

  /**
   * After a reload: closes the pools of upstream settings no longer in use. Their in-flight sends still
   * finish (close() waits for them); the next message to a changed upstream gets a new pool.
   */
  retain(upstreams: readonly SmtpUpstream[]): void {
    const live = new Set(upstreams.map((u) => this.#keyOf(u)));
    for (const key of [...this.#pools.keys()]) if (!live.has(key)) this.#pools.delete(key);
  }

  /**
   * The key stands for the settings themselves: a changed password, client secret or port is a new pool,
   * never a reused one. Computed once per upstream object (a snapshot's are frozen).
   */
  #keyOf(upstream: SmtpUpstream): string {
    let key = this.#keys.get(upstream);
    if (key === undefined) {
      key = poolKey(upstream, this.#heloName);
      this.#keys.set(upstream, key);
    }
    return key;
  }

  get heloName(): string {
    return this.#heloName;
  }

  close(): void {
    this.#pools.clear();
  }
}

/** What a connection that only asks what the upstream offers is opened with: no login. */
export function probeOptions(u: SmtpUpstream, heloName: string): ClientOptions {
  const { auth: _auth, ...options } = clientOptions(u, heloName, noTokens);
  return options;
}

/** What a connection to this upstream is opened with. An OAuth2 login asks `tokens` for its token. */
function clientOptions(u: SmtpUpstream, heloName: string, tokens: TokenSource): ClientOptions {
  const auth = u.auth;
  return {
    host: u.host,
    port: u.port,
    heloName,
    // implicit: TLS from the first byte; starttls: refuse to go on without it; none: never upgrade.
    tls: u.tls,
    tlsOptions: {
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      ...(u.ca !== undefined ? { ca: u.ca } : {}),
      ...(u.servername !== undefined ? { servername: u.servername } : {}),
      // The relay's client certificate, for an upstream that knows it by certificate. Sent only in a
      // handshake that checks the server's own certificate first (rejectUnauthorized above).
      ...(u.clientCertificate ? { cert: u.clientCertificate.cert, key: u.clientCertificate.key } : {}),
    },
    ...(auth?.kind === 'password' ? { auth: { kind: 'password', user: auth.user, pass: auth.pass } } : {}),
    ...(auth?.kind === 'oauth2' ? { auth: { kind: 'oauth2', user: auth.user, token: (renew: boolean) => tokens(u, renew).then((t) => t.accessToken) } } : {}),
    connectTimeoutMs: u.connectTimeoutMs,
    socketTimeoutMs: u.timeoutMs,
    ...(u.chunking === false ? { chunking: false } : {}),
  };
}

/**
 * A connection logged in with credentials belongs to their owner: the tenant and the grant are part of the
 * key. A digest of the settings, not the settings: the key holds no password or private key, and a CA
 * bundle is not kept once more for each of up to a thousand pools.
 */
function poolKey(u: SmtpUpstream, heloName: string): string {
  const settings = JSON.stringify({ ...clientOptions(u, heloName, noTokens), maxConnections: u.maxConnections, grant: u.auth?.kind === 'oauth2' ? u.auth.grant : undefined, owner: u.auth ? u.name : undefined });
  return createHash('sha256').update(settings).digest('base64');
}
