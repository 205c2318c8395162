// Bounds on what one client can take: connections per address, a deadline for making progress however
// busy it keeps the line, a deadline for DATA however slowly it drips, and AUTH failures.
import type { SMTPServer, SMTPServerSession } from 'smtp-server';
import type { InboundPolicy } from '../../config/types.js';
import { Replies, type SmtpReply } from '../errors.js';

interface Connection {
  session: SMTPServerSession;
  send(code: number, text: string): void;
  close(): void;
}

export class SessionGuards {
  readonly #server: () => SMTPServer;
  readonly #policy: () => InboundPolicy;
  readonly #perIp = new Map<string, number>();
  readonly #counted = new WeakSet<SMTPServerSession>();
  readonly #progress = new Map<string, NodeJS.Timeout>();
  readonly #authFailures = new WeakMap<SMTPServerSession, number>();
  readonly #inData = new WeakSet<SMTPServerSession>();

  constructor(server: () => SMTPServer, policy: () => InboundPolicy) {
    this.#server = server;
    this.#policy = policy;
  }

  /** False when this address already has its share of connections. */
  admit(session: SMTPServerSession): boolean {
    const n = this.#perIp.get(session.remoteAddress) ?? 0;
    if (n >= this.#policy().maxConnectionsPerIp) return false;
    this.#perIp.set(session.remoteAddress, n + 1);
    this.#counted.add(session);
    this.progressed(session);
    return true;
  }

  closed(session: SMTPServerSession): void {
    clearTimeout(this.#progress.get(session.id));
    this.#progress.delete(session.id);
    if (!this.#counted.has(session)) return;
    const n = (this.#perIp.get(session.remoteAddress) ?? 1) - 1;
    if (n > 0) this.#perIp.set(session.remoteAddress, n);
    else this.#perIp.delete(session.remoteAddress);
  }

  /** The session did something that counts (AUTH, MAIL, RCPT, DATA): its deadline starts again. */
  progressed(session: SMTPServerSession): void {
    clearTimeout(this.#progress.get(session.id));
    // unref: a deadline must never be what keeps a stopping process alive.
    this.#progress.set(session.id, setTimeout(() => this.#cut(session), this.#policy().progressTimeoutMs).unref());
  }

  /** Starts the DATA deadline in place of the progress one; call the result when DATA has ended. */
  dataStarted(session: SMTPServerSession): () => void {
    clearTimeout(this.#progress.get(session.id));
    this.#inData.add(session);
    const timer = setTimeout(() => this.#cut(session), this.#policy().dataTimeoutMs).unref();
    return () => {
      this.#inData.delete(session);
      clearTimeout(timer);
      this.progressed(session);
    };
  }

  /** Shutdown: every session not in the middle of DATA hears 421 and is closed; the others finish first. */
  closeIdle(): void {
    for (const c of this.#connections()) if (!this.#inData.has(c.session)) say(c, Replies.shuttingDown);
  }

  /** Counts a failed AUTH; resolves after the penalty delay with whether the client may try again. */
  async authFailed(session: SMTPServerSession): Promise<boolean> {
    const failures = (this.#authFailures.get(session) ?? 0) + 1;
    this.#authFailures.set(session, failures);
    const policy = this.#policy();
    // Each failure costs more time: guessing becomes slow without slowing the honest typo much.
    await new Promise((r) => setTimeout(r, policy.authFailureDelayMs * failures).unref());
    return failures < policy.maxAuthFailures;
  }

  #connections(): Connection[] {
    return [...(this.#server().connections as Set<unknown> as Set<Connection>)];
  }

  #cut(session: SMTPServerSession): void {
    const c = this.#connections().find((c) => c.session === session);
    if (c) say(c, Replies.tooSlow);
  }
}

/** 421 makes smtp-server close the connection after saying why. */
function say(c: Connection, reply: SmtpReply): void {
  c.send(reply.code, `${reply.enhanced} ${reply.text}`);
}
