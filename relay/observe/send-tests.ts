// Outcomes of `tenant-relay send-test` messages, for the command to read back from /send-test/<token>:
// the upstream's reply per recipient and the headers as sent. A subscriber of the outcomes: it notes
// the messages that carry the test header when they are accepted, and records their attempts. Only those
// are kept (their headers may be sensitive), the last 100, in memory: a restart forgets them, and the
// command then says to look at the queue.
import { formatReply, formatUpstreamReply } from '../errors.js';
import type { Outcomes } from './outcomes.js';

export const SEND_TEST_HEADER = 'X-Tenant-Relay-Send-Test';
const KEEP = 100;
const SHOWN = { sent: 'sent', temp: 'deferred', perm: 'failed' } as const;
const TOKEN = new RegExp(`^${SEND_TEST_HEADER}:[ \\t]*([A-Za-z0-9-]{8,64})[ \\t]*\\r?$`, 'mi');

export interface SendTestRecord {
  readonly tenant: string | null;
  readonly upstream: string;
  /**
   * Per recipient of the last attempt: sent, deferred or failed; the upstream's own reply when it gave one
   * (with its queue id), else the relay's reply that says why.
   */
  readonly recipients: readonly { readonly rcpt: string; readonly status: 'sent' | 'deferred' | 'failed'; readonly reply: string; readonly upstreamQueueId?: string }[];
  /** The header block as it left the relay. */
  readonly headers: string;
  /** True once no recipient is waiting for a retry. */
  readonly final: boolean;
}

/** Where outcomes are also kept so any relay of a fleet can answer for them (Redis, when configured). */
export interface SharedOutcomes {
  put(token: string, record: SendTestRecord): void;
  get(token: string): Promise<SendTestRecord | undefined>;
}

export class SendTests {
  readonly #records = new Map<string, SendTestRecord>();
  shared: SharedOutcomes | undefined;
  /** Accepted test messages not yet attempted: their token and headers, by message id. */
  readonly #watched = new Map<string, { readonly token: string; readonly headers: string }>();
  readonly #outcomes: Outcomes;

  /** Watches `outcomes` for send-test messages. */
  constructor(outcomes: Outcomes) {
    this.#outcomes = outcomes;
    outcomes.on('accepted', (e) => {
      const token = sendTestToken(e.header);
      if (token) remember(this.#watched, e.message.id, { token, headers: e.header.toString('latin1') });
    });
    outcomes.on('attempted', (e) => {
      const watched = this.#watched.get(e.message.id);
      if (!watched) return;
      if (e.final) this.#watched.delete(e.message.id);
      const record: SendTestRecord = {
        tenant: e.message.tenant,
        upstream: e.upstream,
        recipients: e.outcomes.map((o) => ({
          rcpt: o.recipient,
          status: SHOWN[o.status],
          reply: o.upstreamReply ? formatUpstreamReply(o.upstreamReply) : formatReply(o.reply),
          ...(o.upstreamReply?.queueId ? { upstreamQueueId: o.upstreamReply.queueId } : {}),
        })),
        headers: watched.headers,
        final: e.final,
      };
      remember(this.#records, watched.token, record);
      this.shared?.put(watched.token, record);
    });
  }

  /** The outcome this relay recorded, else one another relay shared. */
  async get(token: string): Promise<SendTestRecord | undefined> {
    // Outcomes still waiting for their batch may hold this one.
    this.#outcomes.flush();
    return this.#records.get(token) ?? (await this.shared?.get(token).catch(() => undefined));
  }
}

/** The token of a send-test message, from its header block; undefined for every other message. */
export function sendTestToken(header: Buffer | string): string | undefined {
  const text = typeof header === 'string' ? header : header.toString('latin1');
  return TOKEN.exec(text)?.[1];
}

/** The newest `KEEP` entries, the latest last. */
function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > KEEP) map.delete(map.keys().next().value as string);
}
