// Outcomes of `tenant-relay send-test` messages, for the command to read back from /send-test/<token>:
// the route, the upstream's reply per recipient and the headers as sent. Only messages carrying the
// test header are kept (their headers may be sensitive), the last 100, in memory.
export const SEND_TEST_HEADER = 'X-Tenant-Relay-Send-Test';

export interface SendTestRecord {
  readonly tenant: string | null;
  readonly upstream: string;
  readonly recipients: readonly { readonly rcpt: string; readonly status: string; readonly reply: string }[];
  /** The header block as it left the relay. */
  readonly headers: string;
  /** True once no recipient is waiting for a retry. */
  readonly final: boolean;
}

export class SendTests {
  readonly #records = new Map<string, SendTestRecord>();

  record(token: string, record: SendTestRecord): void {
    this.#records.delete(token);
    this.#records.set(token, record);
    if (this.#records.size > 100) this.#records.delete(this.#records.keys().next().value as string);
  }

  get(token: string): SendTestRecord | undefined {
    return this.#records.get(token);
  }
}

/** The token of a send-test message, from its header block; undefined for every other message. */
export function sendTestToken(header: Buffer | string): string | undefined {
  const text = typeof header === 'string' ? header : header.toString('latin1');
  return new RegExp(`^${SEND_TEST_HEADER}:[ \\t]*([A-Za-z0-9-]{8,64})[ \\t]*\\r?$`, 'mi').exec(text)?.[1];
}
