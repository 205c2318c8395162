// One inbound SMTP listener: accepts connections (TLS from the first byte for implicit TLS), enforces the
// limit on connections, starts a session for each, and speaks to its sessions by id (deadlines,
// shutdown). A renewed certificate is used from the next handshake.
import net from 'node:net';
import tls from 'node:tls';
import { formatReply, Replies, type SmtpReply } from '../../errors.js';
import { SmtpSession, type SessionSettings } from './session.js';
import type { SessionHooks } from './session-types.js';

/** The limits of a running listener that a new config snapshot may change. */
export interface ListenerLimits {
  readonly size: number;
  readonly maxClients: number;
  readonly maxRecipients: number;
  readonly idleTimeoutMs: number;
}

export interface ListenerOptions extends Pick<SessionSettings, 'name' | 'auth' | 'greetingDelayMs' | 'reverse' | 'fault'> {
  readonly tls: 'none' | 'starttls' | 'implicit';
  readonly certificate?: { readonly key: Buffer; readonly cert: Buffer };
  readonly limits: ListenerLimits;
  /** A failure of the listening socket after it started (an accept that failed): said, never thrown. */
  readonly onError: (err: Error) => void;
}

const TLS_FLOOR = 'TLSv1.2';

export class SmtpListener {
  readonly #sessions = new Map<string, SmtpSession>();
  readonly #server: net.Server;
  readonly #settings: SessionSettings;
  readonly #hooks: SessionHooks;
  #limits: ListenerLimits;
  #context: tls.SecureContext | undefined;
  #closing = false;
  readonly #onError: (err: Error) => void;

  constructor(options: ListenerOptions, hooks: SessionHooks) {
    this.#limits = options.limits;
    this.#hooks = hooks;
    const material = options.certificate;
    if (options.tls !== 'none' && !material) throw new Error(`a ${options.tls} listener needs a certificate and key`);
    if (options.tls === 'starttls') this.#context = tls.createSecureContext({ ...material, minVersion: TLS_FLOOR });
    const context = this.#context;
    this.#settings = {
      name: options.name,
      auth: options.auth,
      greetingDelayMs: options.greetingDelayMs,
      reverse: options.reverse,
      fault: options.fault,
      size: () => this.#limits.size,
      maxRecipients: () => this.#limits.maxRecipients,
      idleTimeoutMs: () => this.#limits.idleTimeoutMs,
      startTls: context ? () => this.#context ?? context : undefined,
      closing: () => this.#closing,
    };
    if (options.tls === 'implicit') {
      // The handshake is bounded like an idle client; a failed one ends there, never a session.
      const server = tls.createServer({ ...material, minVersion: TLS_FLOOR, noDelay: true, handshakeTimeout: Math.min(60_000, this.#limits.idleTimeoutMs) });
      server.on('secureConnection', (socket) => this.#accept(socket, true));
      server.on('tlsClientError', (_err, socket) => socket.destroy());
      this.#server = server;
    } else {
      this.#server = net.createServer({ noDelay: true }, (socket) => this.#accept(socket, false));
    }
    this.#onError = options.onError;
  }

  listen(options: net.ListenOptions): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(options, () => {
        this.#server.off('error', reject);
        this.#server.on('error', this.#onError);
        resolve(this.#server.address() as net.AddressInfo);
      });
    });
  }

  get listening(): boolean {
    return this.#server.listening;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** The ids of the sessions open now. */
  sessionIds(): string[] {
    return [...this.#sessions.keys()];
  }

  /** Says `reply` to one session; a 421 closes it after. False when it is gone. */
  replyTo(session: { readonly id: string }, reply: SmtpReply): boolean {
    const found = this.#sessions.get(session.id);
    found?.say(reply);
    return found !== undefined;
  }

  applyLimits(limits: ListenerLimits): void {
    this.#limits = limits;
  }

  updateCertificate(material: { readonly key: Buffer; readonly cert: Buffer }): void {
    if (this.#server instanceof tls.Server) this.#server.setSecureContext({ ...material, minVersion: TLS_FLOOR });
    else if (this.#context) this.#context = tls.createSecureContext({ ...material, minVersion: TLS_FLOOR });
  }

  /**
   * Stops listening; every command from now on is answered 421. Resolves when the last session has
   * closed, or after `graceMs`, when those still open are told 421 and cut.
   */
  closeWithin(graceMs: number): Promise<void> {
    this.#closing = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        for (const session of [...this.#sessions.values()]) session.cut();
        resolve();
      }, Math.max(1, graceMs));
      timer.unref();
      this.#server.close(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #accept(socket: net.Socket, secure: boolean): void {
    const { maxClients } = this.#limits;
    if (maxClients > 0 && this.#sessions.size >= maxClients) {
      socket.on('error', () => {});
      socket.end(`${formatReply(Replies.tooManyConnections)}\r\n`);
      return;
    }
    const session = new SmtpSession(socket, secure, this.#settings, this.#hooks, (gone) => this.#sessions.delete(gone.id));
    this.#sessions.set(session.id, session);
    session.start();
  }
}
