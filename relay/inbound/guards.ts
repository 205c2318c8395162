// Bounds on what one client can take: connections per address, a deadline for making progress however
// busy it keeps the line, a deadline for DATA however slowly it drips, and AUTH failures.
import type { InboundPolicy } from '../../config/types.js';
import { Replies, type SmtpReply } from '../errors.js';
import type { InboundSession } from './smtp/session-types.js';

/** What the guards need of the server: a way to speak to (and with 421, close) one session. */
export interface SessionChannel {
  replyTo(session: Pick<InboundSession, 'id'>, reply: SmtpReply): boolean;
  sessionIds(): string[];
}

export class SessionGuards {
  readonly #sessions: SessionChannel;
  readonly #policy: () => InboundPolicy;
  readonly #perIp = new Map<string, number>();
  /** Sessions counted against their address. */
  readonly #counted = new Set<string>();
  /** Each session's progress deadline, and the length it was set for. */
  readonly #progress = new Map<string, { readonly timer: NodeJS.Timeout; readonly ms: number }>();
  readonly #authFailures = new Map<string, number>();
  readonly #inData = new Set<string>();

  constructor(sessions: SessionChannel, policy: () => InboundPolicy) {
    this.#sessions = sessions;
    this.#policy = policy;
  }

  /**
   * False when this address already has its share of connections: the apps' own networks (`trusted`) get
   * a larger share (an app server's pool comes from one address), never all of them.
   */
  admit(session: InboundSession, trusted = false): boolean {
    const policy = this.#policy();
    const n = this.#perIp.get(session.remoteAddress) ?? 0;
    if (n >= (trusted ? policy.maxConnectionsPerTrustedIp : policy.maxConnectionsPerIp)) return false;
    this.#perIp.set(session.remoteAddress, n + 1);
    this.#counted.add(session.id);
    this.progressed(session);
    return true;
  }

  closed(session: InboundSession): void {
    this.#stopProgress(session.id);
    this.#authFailures.delete(session.id);
    this.#inData.delete(session.id);
    if (!this.#counted.delete(session.id)) return;
    const n = (this.#perIp.get(session.remoteAddress) ?? 1) - 1;
    if (n > 0) this.#perIp.set(session.remoteAddress, n);
    else this.#perIp.delete(session.remoteAddress);
  }

  /** The session did something that counts (AUTH, MAIL, RCPT, DATA): its deadline starts again. */
  progressed(session: Pick<InboundSession, 'id'>): void {
    const ms = this.#policy().progressTimeoutMs;
    const current = this.#progress.get(session.id);
    // The same deadline restarted in place: a session makes progress four or five times a message, and a
    // new timer each time was a clear, an allocation and a map write each.
    if (current?.ms === ms) {
      current.timer.refresh();
      return;
    }
    if (current) clearTimeout(current.timer);
    // unref: a deadline must never be what keeps a stopping process alive.
    this.#progress.set(session.id, { timer: setTimeout(() => this.#sessions.replyTo(session, Replies.tooSlow), ms).unref(), ms });
  }

  /** Starts the DATA deadline in place of the progress one; call the result when DATA has ended. */
  dataStarted(session: InboundSession): () => void {
    this.#stopProgress(session.id);
    this.#inData.add(session.id);
    const timer = setTimeout(() => this.#sessions.replyTo(session, Replies.tooSlow), this.#policy().dataTimeoutMs).unref();
    return () => {
      this.#inData.delete(session.id);
      clearTimeout(timer);
      this.progressed(session);
    };
  }

  #stopProgress(id: string): void {
    clearTimeout(this.#progress.get(id)?.timer);
    this.#progress.delete(id);
  }

  /** Shutdown: every session not in the middle of DATA hears 421 and is closed; the others finish first. */
  closeIdle(): void {
    for (const id of this.#sessions.sessionIds()) if (!this.#inData.has(id)) this.#sessions.replyTo({ id }, Replies.shuttingDown);
  }

  /** Counts a failed AUTH; resolves after the penalty delay with whether the client may try again. */
  async authFailed(session: InboundSession): Promise<boolean> {
    const failures = (this.#authFailures.get(session.id) ?? 0) + 1;
    this.#authFailures.set(session.id, failures);
    const policy = this.#policy();
    // Each failure costs more time: guessing becomes slow without slowing the honest typo much.
    await new Promise((r) => setTimeout(r, policy.authFailureDelayMs * failures).unref());
    return failures < policy.maxAuthFailures;
  }
}
