// What became of each message, for observers beside the path (send-test's outcomes now; anything that
// reports to the platform later). The path emits; it never waits for an observer, and an observer that
// throws is logged and otherwise ignored: watching mail must never stop it.
import type { Logger } from './ops/log.js';
import type { DeliveryMode, Envelope, RecipientOutcome } from './types.js';

/** The relay took the message: on disk before the 250 (queue), or being forwarded in session (pass-through). */
export interface AcceptedEvent {
  readonly id: string;
  /** Milliseconds since the epoch. */
  readonly at: number;
  readonly tenant: string | null;
  readonly mode: DeliveryMode;
  /** The envelope as it goes out. */
  readonly envelope: Envelope;
  /** The header block as it goes out (DKIM-Signature and rewrites included). */
  readonly header: Buffer;
  readonly size: number;
  /** The Message-ID header's value, if it has one. */
  readonly messageId?: string;
}

/** What an attempt's observers need to know of its message without reading the spool. */
export interface MessageFacts {
  readonly mode: DeliveryMode;
  /** The envelope sender as it goes out ('' for the null sender). */
  readonly mailFrom: string;
  readonly messageId?: string;
  /** Milliseconds since the epoch. */
  readonly acceptedAt: number;
  /** A delivery status notification the relay made. */
  readonly dsn?: boolean;
}

/** One delivery attempt ended, with an outcome per recipient it was for. */
export interface AttemptEvent {
  readonly id: string;
  readonly at: number;
  readonly tenant: string | null;
  readonly message: MessageFacts;
  readonly upstream: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly ms: number;
  readonly outcomes: readonly RecipientOutcome[];
  /** No recipient is left to try again: the message is finished (delivered, failed or expired). */
  readonly final: boolean;
  /** The message outlived delivery.retry.maxLifetimeHours: its temporary failures are final. */
  readonly expired: boolean;
  /** When the recipients still pending are tried again (queue mode, not final). */
  readonly nextAttemptAt?: number;
}

/** A queued message waits for a sending limit: why, and until when it is looked at again. */
export interface HeldEvent {
  readonly id: string;
  readonly at: number;
  readonly tenant: string | null;
  readonly message: MessageFacts;
  /** The recipients still to deliver. */
  readonly recipients: readonly string[];
  readonly reason: string;
  readonly until: number;
}

/** `{ messageId }` when there is one: for spreading into an event. */
export const messageIdOf = (m: { readonly messageId?: string }) => (m.messageId ? { messageId: m.messageId } : {});

interface Observers {
  accepted: ((e: AcceptedEvent) => void)[];
  attempted: ((e: AttemptEvent) => void)[];
  held: ((e: HeldEvent) => void)[];
}

export class MessageEvents {
  readonly #logger: Logger;
  readonly #observers: Observers = { accepted: [], attempted: [], held: [] };

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  onAccepted(observer: (e: AcceptedEvent) => void): void {
    this.#observers.accepted.push(observer);
  }

  onAttempted(observer: (e: AttemptEvent) => void): void {
    this.#observers.attempted.push(observer);
  }

  onHeld(observer: (e: HeldEvent) => void): void {
    this.#observers.held.push(observer);
  }

  accepted(e: AcceptedEvent): void {
    this.#tell('accepted', e);
  }

  held(e: HeldEvent): void {
    this.#tell('held', e);
  }

  attempted(e: AttemptEvent): void {
    this.#tell('attempted', e);
  }

  #tell<K extends keyof Observers>(kind: K, e: Parameters<Observers[K][number]>[0]): void {
    for (const observer of this.#observers[kind] as ((e: unknown) => void)[]) {
      try {
        observer(e);
      } catch (err) {
        this.#logger.error({ event: 'observer-failed', kind, id: e.id, err }, 'an observer of message events failed; mail is not affected');
      }
    }
  }
}
