// What the relay's handlers see of one inbound SMTP session, and what they answer. The protocol itself
// (smtp/session.ts) owns every field; the handlers read them and decide.
import type { Readable } from 'node:stream';
import type { SmtpReply } from '../../errors.js';
import type { AuthIdentity } from '../../types.js';

/** An address from MAIL FROM or RCPT TO, as the client wrote it between < and >, and its parameters. */
export interface SmtpAddress {
  readonly address: string;
  /** Parameters by upper-case name (SIZE=1000 → SIZE: "1000"; a bare SMTPUTF8 → true). */
  readonly args: Readonly<Record<string, string | true>>;
}

export interface InboundSession {
  readonly id: string;
  readonly remoteAddress: string;
  /** The client's name from reverse DNS (lower case), or "[address]" without one. */
  readonly clientHostname: string;
  /** The name the client gave in EHLO or HELO; undefined before it did. */
  readonly hostNameAppearsAs: string | undefined;
  readonly secure: boolean;
  readonly user: AuthIdentity | undefined;
  readonly envelope: { readonly mailFrom: SmtpAddress | undefined; readonly rcptTo: readonly SmtpAddress[] };
  /** 1 for the session's first transaction, counting up with each message it completed. */
  readonly transaction: number;
}

/** What DATA's final dot is answered with; `afterReply` runs once the reply is written. */
export interface DataAnswer {
  readonly reply: SmtpReply;
  readonly afterReply?: () => void;
}

/** A refusal, or undefined to go on; a promise when the answer needs I/O. */
export type Verdict = SmtpReply | undefined | Promise<SmtpReply | undefined>;

/** The relay's decisions at each step of a session. A 421 reply closes the session after it is said. */
export interface SessionHooks {
  /** Before the greeting: a refusal closes the connection. */
  connect(session: InboundSession): SmtpReply | undefined;
  /** AUTH: the identity to take, or the refusal. */
  auth(session: InboundSession, username: string, password: string): Promise<AuthIdentity | SmtpReply>;
  mailFrom(session: InboundSession, from: SmtpAddress): Verdict;
  rcptTo(session: InboundSession, to: SmtpAddress): Verdict;
  /** The message, dot-unstuffed, as the client sends it; the answer is said once the stream has ended. */
  data(session: InboundSession, message: Readable): Promise<DataAnswer>;
  closed(session: InboundSession): void;
}
