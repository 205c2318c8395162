// What became of each message, declared in one place. The path says each outcome once, here; everything
// that reports it subscribes: the per-message log lines (log-lines.ts), the metrics (outcome-metrics.ts),
// send-test's outcomes (send-tests.ts), the delivery events and the trace (reporting/). A new sink is one
// more subscriber. The path never waits for a subscriber, and one that throws is logged and otherwise
// ignored: watching mail must never stop it.
//
// The relay tells its subscribers in batches (`batchMs`), up to 20 ms after the fact, in the order the
// outcomes came. Told one at a time, between two messages' system calls, each subscriber ran cold: a
// log line cost 20-23 us there against 1.5 us among others in a loop, and all the subscribers of one
// message together about 90 us against 31 us batched (timed in the relay, one message per connection,
// on the bench machine). A reader that must see every outcome so far (a scrape, a trace search, a
// stop) calls `flush` first; a crash may lose what waits, as it may lose what the log sink holds.
import type { SmtpReply } from '../errors.js';
import type { Logger } from '../log.js';
import type { DeliveryMode, Envelope, RecipientOutcome } from '../types.js';

/** A message, the same in every outcome that names it. */
export interface MessageFacts {
  /** The queue id (in pass-through, the transaction's id). */
  readonly id: string;
  readonly tenant: string | null;
  readonly mode: DeliveryMode;
  /** The envelope sender as it goes out ('' for the null sender). */
  readonly mailFrom: string;
  readonly messageId?: string;
  /** When the relay took it, in milliseconds since the epoch. */
  readonly acceptedAt: number;
  /** A delivery status notification the relay made. */
  readonly dsn?: boolean;
}

/** A client's transaction, as each of its log lines names it. */
export interface TransactionFacts {
  readonly session: string;
  readonly id: string;
  readonly tenant: string | null;
  /** The client's address: a connection that carried a message has no `connection` line at info. */
  readonly client: string;
  /** The SMTP AUTH user, when the client logged in. */
  readonly user?: string;
  /** The envelope sender the client gave. */
  readonly from: string;
  readonly rcpt: number;
}

/** The relay took the message: on disk before the 250 (queue), or being forwarded in session (pass-through). */
export interface Accepted {
  readonly message: MessageFacts;
  /** The envelope as it goes out. */
  readonly envelope: Envelope;
  /** The header block as it goes out (DKIM-Signature and rewrites included). */
  readonly header: Buffer;
  readonly size: number;
  /** Why it went where it went (tenant, route), as decided at MAIL FROM. */
  readonly decision?: string;
}

/** The relay refused a sender at MAIL FROM: no tenant's record, or a decision against it. */
export interface SenderRefused {
  readonly session: string;
  readonly from: string;
  readonly reason: string;
  readonly reply: SmtpReply;
}

/** What the client heard at the end of DATA, and what the relay did with its message. */
export interface Answered {
  readonly tx: TransactionFacts;
  readonly mode: DeliveryMode;
  readonly reply: SmtpReply;
  /** Why it was refused, when it was. */
  readonly reason?: string;
  /** Milliseconds from DATA to the reply. */
  readonly ms: number;
  /** What was done that the sender may want to know (sent unsigned, a header dropped). */
  readonly warnings: readonly string[];
  /** Pass-through: the upstream's answer the reply was made from. */
  readonly forwarded?: {
    readonly envelopeFrom: string;
    readonly upstream: string;
    readonly signed: boolean;
    readonly outcomes: readonly RecipientOutcome[];
    readonly bytes: number;
  };
}

/** One delivery attempt ended, with an outcome per recipient it was for. */
export interface Attempted {
  readonly message: MessageFacts;
  readonly at: number;
  readonly upstream: string;
  /** false: no upstream was asked (the relay holds the message, e.g. its tenant is gone). */
  readonly tried: boolean;
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

/** A queued message's state after an attempt, as written to the spool. */
export type Settled = {
  readonly message: MessageFacts;
  readonly attempt: number;
} & (
  | { readonly state: 'deferred'; readonly upstream: string; readonly ms: number; readonly pending: number; readonly nextAttemptAt: number }
  | { readonly state: 'delivered'; readonly recipients: number }
  | {
      readonly state: 'failed';
      readonly failed: readonly { readonly address: string; readonly reply?: string }[];
      /** A DSN went to the sender (not for a DSN, nor for the null sender). */
      readonly bounced: boolean;
      /** The DSN could not be DKIM-signed, and why: it goes unsigned. */
      readonly dsnUnsigned?: string;
    }
);

/** A queued message waits for a sending limit: why, and until when it is looked at again. */
export interface Held {
  readonly message: MessageFacts;
  readonly at: number;
  /** The recipients still to deliver. */
  readonly recipients: readonly string[];
  readonly reason: string;
  readonly until: number;
  /** The hold is new, its reason changed, or it has lasted another hour: worth telling the platform. */
  readonly news: boolean;
}

/** An upstream's provider asked its mailbox to slow down, or said its quota is used up: its mail is paced. */
export interface Paced {
  readonly upstream: string;
  /** The tenant of the message whose attempt heard it. */
  readonly tenant: string | null;
  readonly signal: 'quota' | 'throttle';
  /** The cool-down's end, and how many came before it in a row (each doubles the last). */
  readonly until: number;
  readonly level: number;
  readonly reason: string;
  /** Whether this relay heard the provider's reply, or another relay of the fleet did and told it. */
  readonly heardBy: 'this relay' | 'another relay';
}

/** A person acted on a queued message (the mail console, `tenant-relay queue`). */
export interface Handled {
  readonly message: MessageFacts;
  readonly at: number;
  /** The recipients still to deliver when it was done. */
  readonly recipients: readonly string[];
  readonly action: 'retry' | 'delete' | 'hold' | 'release';
  /** Who asked, as the request said. */
  readonly by: string;
}

/** A provider's webhook told, after the upstream's 250, what became of a recipient. */
export interface Reported {
  readonly message: MessageFacts;
  readonly at: number;
  readonly recipient: string;
  readonly type: 'bounced' | 'complained' | 'delivered';
  readonly provider: string;
  /** What the provider said, cleaned and bounded. */
  readonly reason: string;
}

export interface OutcomeKinds {
  /** Any refusal the SMTP server says, by its reply. */
  refusal: SmtpReply;
  senderRefused: SenderRefused;
  accepted: Accepted;
  answered: Answered;
  attempted: Attempted;
  settled: Settled;
  held: Held;
  paced: Paced;
  handled: Handled;
  reported: Reported;
}

type Subscribers = { [K in keyof OutcomeKinds]: ((e: OutcomeKinds[K]) => void)[] };
type Waiting = { [K in keyof OutcomeKinds]: { readonly kind: K; readonly e: OutcomeKinds[K] } }[keyof OutcomeKinds];

/** The relay's batch: outcomes wait at most this long, */
export const OUTCOME_BATCH_MS = 20;
/** and no more than this many wait. */
const BATCH_MAX = 1000;

export class Outcomes {
  readonly #logger: Logger;
  readonly #batchMs: number;
  readonly #subscribers: Subscribers = { refusal: [], senderRefused: [], accepted: [], answered: [], attempted: [], settled: [], held: [], paced: [], handled: [], reported: [] };
  #waiting: Waiting[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing = false;

  /** `batchMs`: subscribers are told in batches, at most this late; 0 (the default) tells them at once. */
  constructor(logger: Logger, options: { readonly batchMs?: number } = {}) {
    this.#logger = logger;
    this.#batchMs = options.batchMs ?? 0;
  }

  on<K extends keyof OutcomeKinds>(kind: K, subscriber: (e: OutcomeKinds[K]) => void): void {
    this.#subscribers[kind].push(subscriber);
  }

  emit<K extends keyof OutcomeKinds>(kind: K, e: OutcomeKinds[K]): void {
    if (this.#batchMs <= 0) return this.#tell(kind, e);
    this.#waiting.push({ kind, e } as Waiting);
    if (this.#waiting.length >= BATCH_MAX) this.flush();
    // unref: what waits never keeps a stopping process alive (a stop flushes it).
    else this.#timer ??= setTimeout(() => this.flush(), this.#batchMs).unref();
  }

  /** Tells the subscribers every outcome that waits, now, in order. */
  flush(): void {
    // Called again by a subscriber (a read that flushes first): the flush under way tells the rest, in order.
    if (this.#flushing) return;
    this.#flushing = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      while (this.#waiting.length > 0) {
        const waiting = this.#waiting;
        this.#waiting = [];
        for (const w of waiting) this.#tell(w.kind, w.e);
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** A stop: what waits is told. Closed after everything that emits. */
  close(): void {
    this.flush();
  }

  #tell<K extends keyof OutcomeKinds>(kind: K, e: OutcomeKinds[K]): void {
    for (const subscriber of this.#subscribers[kind]) {
      try {
        subscriber(e);
      } catch (err) {
        this.#logger.error({ event: 'observer-failed', kind, err }, 'a subscriber to message outcomes failed; mail is not affected');
      }
    }
  }
}

/** `{ messageId }` when there is one: for spreading into facts. */
export const messageIdOf = (m: { readonly messageId?: string }) => (m.messageId ? { messageId: m.messageId } : {});
